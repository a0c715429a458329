"""Shared material for the training tests: a tiny FCN and a synthetic segmentation set (no tests here).

Scenes are noise with a red square (class 1) and a green square (class 2) on class 0, the top row
marked 255 (ignored): learnable in a few dozen iterations by a two-conv FCN.
"""
from pathlib import Path

import numpy as np
import torch

from digitslite.datasets.lmdb_writer import LmdbWriter
from digitslite.datasets.records import feature_datum, label_datum

FCN_NET = """
name: "tinyfcn"
layer { name: "data" type: "Data" top: "data" include { phase: TRAIN }
  transform_param { scale: 0.00390625 CROP_MIRROR } data_param { batch_size: 4 backend: LMDB } }
layer { name: "label" type: "Data" top: "label" include { phase: TRAIN }
  data_param { batch_size: 4 backend: LMDB } }
layer { name: "data" type: "Data" top: "data" include { phase: TEST }
  transform_param { scale: 0.00390625 CROP } data_param { batch_size: 4 backend: LMDB } }
layer { name: "label" type: "Data" top: "label" include { phase: TEST }
  data_param { batch_size: 4 backend: LMDB } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 8 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
  pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "pool1" top: "conv2"
  convolution_param { num_output: 16 kernel_size: 3 pad: 1 weight_filler { type: "msra" } } }
layer { name: "relu2" type: "ReLU" bottom: "conv2" top: "conv2" }
layer { name: "drop2" type: "Dropout" bottom: "conv2" top: "conv2" dropout_param { dropout_ratio: 0.1 } }
layer { name: "score_fr" type: "Convolution" bottom: "conv2" top: "score_fr"
  convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "upscore" type: "Deconvolution" bottom: "score_fr" top: "upscore" param { lr_mult: 0 }
  convolution_param { num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false
                      weight_filler { type: "bilinear" } } }
layer { name: "score" type: "Crop" bottom: "upscore" bottom: "data" top: "score"
  crop_param { axis: 2 offset: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
  loss_param { ignore_label: 255 normalize: true } exclude { stage: "deploy" } }
layer { name: "accuracy" type: "Accuracy" bottom: "score" bottom: "label" top: "accuracy"
  include { stage: "val" } accuracy_param { ignore_label: 255 } }
"""


def fcn_net(crop: int = 0) -> str:
    """The net text; with `crop`, random crop + mirror in TRAIN and a centre crop in TEST."""
    train = f"crop_size: {crop} mirror: true" if crop else ""
    test = f"crop_size: {crop}" if crop else ""
    return FCN_NET.replace("CROP_MIRROR", train).replace("CROP", test)


def scenes(count: int, seed: int, size: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """(N×H×W×3 uint8 RGB images, N×H×W uint8 labels)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((count, size, size), dtype=np.uint8)
    images = rng.integers(60, 140, (count, size, size, 3)).astype(np.int16)
    square = size // 3 + 1
    for n in range(count):
        for cls, channel in ((1, 0), (2, 1)):
            y, x = rng.integers(0, size - square, 2)
            labels[n, y:y + square, x:x + square] = cls
            images[n, y:y + square, x:x + square, channel] += 110
    labels[:, 0, :] = 255
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_dataset(root: Path, train_count: int = 16, val_count: int = 8) -> Path:
    """A DIGITS-layout dataset: <root>/{train,val}_db/{features,labels} LMDBs under shared keys."""
    from PIL import Image

    for stage, count, seed in (("train_db", train_count, 1), ("val_db", val_count, 2)):
        images, labels = scenes(count, seed)
        features, masks = LmdbWriter(root / stage / "features"), LmdbWriter(root / stage / "labels")
        for index in range(count):
            key = f"{index:09d}".encode()
            features.put(key, feature_datum(Image.fromarray(images[index]), "png"))
            masks.put(key, label_datum(labels[index]))
        features.close()
        masks.close()
    return root


def feed_batches(count: int, seed: int, batch: int = 4) -> list[dict[str, torch.Tensor]]:
    """The same scenes as in-memory batches in Caffe's blob layout (BGR, scaled, float labels)."""
    images, labels = scenes(count, seed)
    data = torch.from_numpy(images[..., ::-1].transpose(0, 3, 1, 2).copy()).float() / 256
    label = torch.from_numpy(labels).unsqueeze(1).float()
    return [{"data": data[i:i + batch], "label": label[i:i + batch]} for i in range(0, count, batch)]
