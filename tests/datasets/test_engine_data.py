"""digitslite.engine.data: LMDB datasets for torch, joint transforms and Caffe Data layer binding."""
import numpy as np
import pytest
import torch
from google.protobuf import text_format

from digitslite.caffe import caffe_pb2
from digitslite.datasets import DatasetOptions, create_dataset
from digitslite.engine.data import (
    SegmentationLmdbDataset,
    SegmentationTransform,
    bind_data_layers,
    dataset_from_data_layer,
    load_mean,
)
from digitslite.engine.feeds import data_layer_stream
from digitslite.errors import UserError
from tests.datasets.helpers import make_folders, save_image, save_palette_label, sources_by_key

IGNORE = 255


def build(root, **overrides):
    values = {"images": root / "images", "labels": root / "labels", "val_percent": 0, "seed": 2, "workers": 1}
    create_dataset(DatasetOptions(**(values | overrides)), root / "ds")
    return root / "ds"


def source_of(dataset, stage="train"):
    """Record index -> source name (records are keyed %09d in order)."""
    return list(sources_by_key(dataset, stage).values())


def bgr(pixels: np.ndarray) -> np.ndarray:
    return pixels[:, :, ::-1].transpose(2, 0, 1).astype(np.float32)


def coded_folders(root, count=3, width=12, height=10):
    """Pairs whose image red channel encodes the label (red = 60 * class + 10)."""
    rng = np.random.default_rng(5)
    written = {}
    for index in range(count):
        indices = rng.integers(0, 3, (height, width), dtype=np.uint8)
        indices.flat[:3] = [0, 1, 2]
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        pixels[:, :, 0] = indices * 60 + 10
        save_image(root / "images" / f"{index}.png", pixels)
        save_palette_label(root / "labels" / f"{index}.png", indices)
        written[str(index)] = (pixels, indices)
    return written


def test_items_are_the_stored_pixels_as_bgr_floats_and_long_labels(tmp_path):
    written = make_folders(tmp_path, 3)
    dataset = SegmentationLmdbDataset(build(tmp_path) / "train_db")

    assert len(dataset) == 3
    for index, name in enumerate(source_of(tmp_path / "ds")):
        image, label = dataset[index]
        assert image.dtype == torch.float32 and label.dtype == torch.int64
        assert torch.equal(image, torch.from_numpy(bgr(written[name][0])))
        assert torch.equal(label, torch.from_numpy(written[name][1].astype(np.int64)))


def window_of(source_image, source_label, image, label):
    """(top, left, mirrored) of the source window equal to (image, label), or None."""
    height, width = label.shape
    for mirrored in (False, True):
        for top in range(source_label.shape[0] - height + 1):
            for left in range(source_label.shape[1] - width + 1):
                window_image = source_image[:, top:top + height, left:left + width]
                window_label = source_label[top:top + height, left:left + width]
                if mirrored:
                    window_image, window_label = window_image.flip(-1), window_label.flip(-1)
                if torch.equal(window_image, image) and torch.equal(window_label, label):
                    return top, left, mirrored
    return None


def test_random_crop_and_mirror_take_the_same_window_of_image_and_label(tmp_path):
    coded_folders(tmp_path)
    plain = SegmentationLmdbDataset(build(tmp_path) / "train_db")
    augmented = SegmentationLmdbDataset(tmp_path / "ds" / "train_db",
                                        SegmentationTransform(crop_size=(4, 5), mirror=True))
    torch.manual_seed(0)

    windows = set()
    for _ in range(6):
        for index in range(len(plain)):
            image, label = augmented[index]
            assert image.shape == (3, 4, 5) and label.shape == (4, 5)
            assert torch.equal(label, ((image[2] - 10) / 60).long())  # red (BGR channel 2) codes the class
            found = window_of(*plain[index], image, label)
            assert found is not None
            windows.add(found)
    assert len(windows) > 4 and {mirrored for _, _, mirrored in windows} == {False, True}


def test_centre_crop_in_the_test_phase(tmp_path):
    written = make_folders(tmp_path, 1)
    dataset = SegmentationLmdbDataset(build(tmp_path) / "train_db",
                                      SegmentationTransform(crop_size=(4, 6), random_crop=False))

    image, label = dataset[0]

    pixels, indices = written["000"]
    assert torch.equal(label, torch.from_numpy(indices[3:7, 3:9].astype(np.int64)))
    assert torch.equal(image, torch.from_numpy(bgr(pixels)[:, 3:7, 3:9]))


def test_crop_larger_than_the_record_pads_the_label_with_ignore(tmp_path):
    written = make_folders(tmp_path, 1)
    dataset = SegmentationLmdbDataset(build(tmp_path) / "train_db",
                                      SegmentationTransform(crop_size=12, random_crop=False))

    image, label = dataset[0]

    assert image.shape == (3, 12, 12)
    assert (label[10:] == IGNORE).all() and (image[:, 10:] == 0).all()
    assert torch.equal(label[:10], torch.from_numpy(written["000"][1].astype(np.int64)))


def test_scale_jitter_resizes_image_and_label_together(tmp_path):
    written = make_folders(tmp_path, 1)
    dataset = SegmentationLmdbDataset(build(tmp_path) / "train_db",
                                      SegmentationTransform(scale_jitter=(2.0, 2.0)))

    image, label = dataset[0]

    assert image.shape == (3, 20, 24)
    assert np.array_equal(label.numpy(), np.kron(written["000"][1], np.ones((2, 2), np.uint8)))


def test_mean_image_pixel_and_scale(tmp_path):
    written = make_folders(tmp_path, 2)
    dataset_dir = build(tmp_path)
    mean_image = np.mean([bgr(pixels) for pixels, _ in written.values()], axis=0)
    names = source_of(dataset_dir)

    by_image = SegmentationLmdbDataset(dataset_dir / "train_db", SegmentationTransform(
        mean=load_mean(dataset_dir / "mean.binaryproto", "image"), scale=0.5))
    by_pixel = SegmentationLmdbDataset(dataset_dir / "train_db", SegmentationTransform(
        mean=load_mean(dataset_dir / "mean.binaryproto", "pixel")))

    source = bgr(written[names[0]][0])
    np.testing.assert_allclose(by_image[0][0].numpy(), (source - mean_image) * 0.5, atol=1e-4)
    np.testing.assert_allclose(by_pixel[0][0].numpy(), source - mean_image.mean(axis=(1, 2), keepdims=True),
                               atol=1e-3)
    assert load_mean(dataset_dir / "mean.binaryproto", "none") is None


def layers(text: str) -> list[caffe_pb2.LayerParameter]:
    return list(text_format.Parse(text, caffe_pb2.NetParameter()).layer)


def test_data_layer_transform_param_applies_mean_value_scale_and_centre_crop(tmp_path):
    written = make_folders(tmp_path, 2)
    dataset_dir = build(tmp_path)
    layer, = layers(f'''layer {{ name: "data" type: "Data" top: "data" top: "label"
        data_param {{ source: "{dataset_dir}/train_db/features" batch_size: 2 backend: LMDB }}
        transform_param {{ crop_size: 4 mean_value: 10 mean_value: 20 mean_value: 30 scale: 0.5 }} }}''')

    bound = dataset_from_data_layer(layer, caffe_pb2.TEST)

    assert bound.tops == {"data": "image", "label": "label"} and bound.batch_size == 2
    image, label = bound.dataset[0]
    pixels, indices = written[source_of(dataset_dir)[0]]
    expected = (bgr(pixels)[:, 3:7, 4:8] - np.array([10, 20, 30], np.float32).reshape(3, 1, 1)) * 0.5
    np.testing.assert_allclose(image.numpy(), expected)
    assert np.array_equal(label.numpy(), indices[3:7, 4:8])


def test_digits_layers_without_source_bind_to_the_dataset_folder_and_merge(tmp_path):
    make_folders(tmp_path, 4)
    dataset_dir = build(tmp_path, val_percent=50)
    net = '''layer { name: "data" type: "Data" top: "data" data_param { batch_size: 2 backend: LMDB }
                     transform_param { mirror: true mean_file: "mean.binaryproto" } }
             layer { name: "label" type: "Data" top: "label" data_param { batch_size: 2 backend: LMDB } }
             layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" bottom: "label" }'''

    train, = bind_data_layers(layers(net), caffe_pb2.TRAIN, dataset_dir)
    test, = bind_data_layers(layers(net), caffe_pb2.TEST, dataset_dir)

    assert train.layer_names == ("data", "label") and train.tops == {"data": "image", "label": "label"}
    assert train.dataset.features_path == dataset_dir / "train_db" / "features"
    assert train.dataset.labels_path == dataset_dir / "train_db" / "labels"
    assert test.dataset.features_path == dataset_dir / "val_db" / "features"
    assert train.dataset.transform.mirror and test.dataset.transform.mirror  # Caffe mirrors in both phases
    assert train.dataset.transform.random_crop and not test.dataset.transform.random_crop
    assert train.dataset.transform.mean.shape == (3, 10, 12)


def test_relative_source_joins_the_dataset_root_and_a_labels_source_is_the_label_half(tmp_path):
    make_folders(tmp_path, 2)
    dataset_dir = build(tmp_path)
    layer, = layers('layer { name: "gt" type: "Data" top: "gt" data_param { source: "train_db/labels" } }')

    bound = dataset_from_data_layer(layer, caffe_pb2.TRAIN, dataset_dir)

    assert bound.tops == {"gt": "label"}
    assert bound.dataset.features_path == dataset_dir / "train_db" / "features"


@pytest.mark.parametrize(("text", "expected"), [
    ('layer { name: "d" type: "Input" top: "d" }',
     "layer 'd' is of type 'Input'; only Data layers read LMDBs"),
    ('layer { name: "d" type: "Data" top: "d" data_param { source: "x" backend: LEVELDB } }',
     "layer 'd': backend LEVELDB is not supported"),
    ('layer { name: "d" type: "Data" top: "d" data_param { source: "nowhere/features" } }',
     "layer 'd': {root}/nowhere/features: not an LMDB folder"),
    ('layer { name: "d" type: "Data" top: "d" data_param { source: "train_db/features" } '
     'transform_param { mean_file: "mean.binaryproto" mean_value: 3 } }', "both mean_file and mean_value"),
    ('layer { name: "l" type: "Data" top: "label" data_param { source: "train_db/labels" } '
     'transform_param { crop_size: 4 } }', "layer 'l' reads labels but has a transform_param"),
])
def test_data_layer_errors_name_the_layer_and_the_fix(tmp_path, text, expected):
    make_folders(tmp_path, 2)
    dataset_dir = build(tmp_path)
    layer, = layers(text)

    with pytest.raises(UserError) as raised:
        dataset_from_data_layer(layer, caffe_pb2.TRAIN, dataset_dir)

    assert expected.format(root=dataset_dir) in str(raised.value)


def test_empty_source_needs_a_dataset_root():
    layer, = layers('layer { name: "data" type: "Data" top: "data" data_param { batch_size: 1 } }')

    with pytest.raises(UserError, match=r"layer 'data': data_param\.source is empty"):
        dataset_from_data_layer(layer, caffe_pb2.TRAIN)


def test_image_and_label_layers_with_different_batch_sizes_are_refused(tmp_path):
    make_folders(tmp_path, 2)
    net = '''layer { name: "data" type: "Data" top: "data" data_param { batch_size: 2 } }
             layer { name: "label" type: "Data" top: "label" data_param { batch_size: 1 } }'''

    with pytest.raises(UserError, match="batch sizes 2 and 1; give them the same"):
        bind_data_layers(layers(net), caffe_pb2.TRAIN, build(tmp_path))


def variable_size_dataset(root):
    rng = np.random.default_rng(0)
    for name, (height, width) in {"a": (10, 12), "b": (14, 9)}.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        save_image(root / "images" / f"{name}.png", pixels)
        indices = rng.integers(0, 3, (height, width), dtype=np.uint8)
        save_palette_label(root / "labels" / f"{name}.png", indices)
    return build(root)


def test_variable_sizes_batch_one_at_a_time_or_with_a_crop(tmp_path):
    dataset_dir = variable_size_dataset(tmp_path)

    def first_batch(batch_size: int, transform: str = "") -> dict[str, torch.Tensor]:
        source = dataset_dir / "train_db" / "features"
        layer, = layers(f'layer {{ name: "data" type: "Data" top: "data" top: "label" {transform} '
                        f'data_param {{ source: "{source}" batch_size: {batch_size} }} }}')
        return data_layer_stream([layer], caffe_pb2.TRAIN, None, seed=1).next()

    with pytest.raises(UserError, match=r"layer 'data': one batch holds records of sizes .*; use "
                                        "batch_size 1 or a crop_size"):
        first_batch(2)
    cropped = first_batch(2, "transform_param { crop_size: 8 }")
    assert cropped["data"].shape == (2, 3, 8, 8) and cropped["label"].shape == (2, 1, 8, 8)
    assert first_batch(1)["data"].shape[0] == 1


def test_loader_workers_read_after_the_parent_has_read(tmp_path):
    written = make_folders(tmp_path, 4)
    dataset_dir = build(tmp_path)
    layer, = layers(f'layer {{ name: "data" type: "Data" top: "data" top: "label" '
                    f'data_param {{ source: "{dataset_dir}/train_db/features" batch_size: 2 }} }}')
    dataset_from_data_layer(layer, caffe_pb2.TRAIN).dataset[0]  # the parent opens the environment first

    stream = data_layer_stream([layer], caffe_pb2.TRAIN, None, seed=1, workers=2)
    labels = torch.cat([stream.next()["label"][:, 0].long() for _ in range(2)])
    stream.close()
    expected = [written[name][1].astype(np.int64) for name in source_of(dataset_dir)]
    assert np.array_equal(labels.numpy(), np.stack(expected))
