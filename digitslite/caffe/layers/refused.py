"""Layer types real nets use that digitslite refuses, each with the reason and what to use instead
(infer_shapes says it in place of the plain "not supported")."""

REFUSED_TYPES: dict[str, str] = {
    "MemoryData": "it is fed from C++/pycaffe code (MemoryDataLayer::Reset); use an Input layer and "
                  "feed the blobs, or a digitslite dataset with a Data layer",
    "WindowData": "R-CNN's window files are not a digitslite dataset format; crop the windows into an "
                  "image dataset and use a Data layer",
    "HDF5Output": "a net writes no files in digitslite; read the blobs from the inference results instead",
    "BN": "it is SegNet's fork layer (caffe-segnet); replace it with BatchNorm followed by Scale "
          "(bias_term: true)",
    "L1Loss": "it is NVIDIA Caffe's fork layer; use EuclideanLoss, or run the net in NVIDIA Caffe",
    "Axpy": "it is a waifu2x/SENet fork layer; rewrite it as Scale (two bottoms) plus Eltwise SUM",
    "CropCenter": "it is waifu2x's fork layer; use Crop with offsets for the centre",
}
