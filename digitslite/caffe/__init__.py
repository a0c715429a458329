"""Caffe's declarative format: networks, solvers and weights. Imports no torch, by design."""
