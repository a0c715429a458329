"""digitslite: Caffe-format semantic segmentation (FCN) training on PyTorch, behind a job server."""

__version__ = "0.1.0"
