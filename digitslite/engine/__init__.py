"""PyTorch execution of Caffe networks with Caffe's semantics (layers, fillers, solvers)."""
