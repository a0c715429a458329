"""Layers that feed the net: Input declares its tops' shapes, data layers read a dataset.

Their tops' shapes come from the net's inputs, not from a rule (digitslite.caffe.shapes)."""
from digitslite.caffe.layers.record import LayerType, Source

TYPES = (
    LayerType("Input", "data", "A net input of declared shape; the caller or `input_param.shape` gives it.",
              params=("input_param",), source=Source.INPUT),
    LayerType("Data", "data", "Reads records and labels from an LMDB (a digitslite dataset).",
              params=("data_param", "transform_param"), source=Source.DATASET),
    LayerType("ImageData", "data", "Reads images listed in a text file, with optional resizing.",
              params=("image_data_param", "transform_param"), source=Source.DATASET),
    LayerType("HDF5Data", "data", "Reads the datasets named after its tops from the .h5 files listed.",
              params=("hdf5_data_param",), source=Source.DATASET),
    LayerType("Python", "data", "A Python data layer, run only as a data source (no bottoms).",
              params=("python_param",), source=Source.DATASET),
)
