"""SegmentationTransform.place_all on records large enough to be worked piece by piece, against
Caffe's arithmetic written out by hand: value = (pixel - mean) * scale in float32, the crop window
picked from the record and the mean alike, mirrored after. The torch path for accelerators
(`apply`) must give the same bits, the sign of a padded zero included."""
import numpy as np
import pytest
import torch

from digitslite.engine.data import Placement, SegmentationTransform

HEIGHT, WIDTH = 300, 400        # 120,000 values a channel: two pieces a channel
SCALE = np.float32(0.00390625)


def _record(seed: int, width: int = WIDTH) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (3, HEIGHT, width), dtype=np.uint8)
    label = rng.integers(0, 21, (HEIGHT, width), dtype=np.uint8)
    mean = (rng.random((3, HEIGHT, width), dtype=np.float32) * 255).astype(np.float32)
    return image, label, mean


def _by_hand(image, label, mean, top, left, crop_h, crop_w, mirror, scale=SCALE, ignore=255):
    """The window, the padding below and right of the record, then the mirror: Caffe's order."""
    out = np.zeros((3, crop_h, crop_w), np.float32)
    labels = np.full((crop_h, crop_w), ignore, np.float32)
    window = (slice(top, top + crop_h), slice(left, left + crop_w))
    values = (image[(slice(None), *window)].astype(np.float32) - mean[(slice(None), *window)]) * scale
    out[:, :values.shape[1], :values.shape[2]] = values
    labels[:values.shape[1], :values.shape[2]] = label[window]
    out[:, values.shape[1]:, :] = np.float32(0) * scale
    out[:, :, values.shape[2]:] = np.float32(0) * scale
    return (out[..., ::-1], labels[..., ::-1]) if mirror else (out, labels)


@pytest.mark.parametrize("mirror", [False, True])
@pytest.mark.parametrize("window", [(0, 0, HEIGHT, WIDTH), (7, 13, 240, 320),
                                    (0, 0, HEIGHT + 10, WIDTH + 12)], ids=["whole", "inside", "padded"])
def test_large_records_give_caffes_values_bit_for_bit(mirror, window):
    image, label, mean = _record(1)
    top, left, crop_h, crop_w = window
    transform = SegmentationTransform(crop_size=(crop_h, crop_w), mirror=True, mean=mean, scale=float(SCALE))
    placement = Placement(None, top, left, mirror)
    got_image, got_label = transform.place(image, label, placement)
    expected_image, expected_label = _by_hand(image, label, mean, top, left, crop_h, crop_w, mirror)
    assert np.array_equal(got_image.view(np.uint32), np.ascontiguousarray(expected_image).view(np.uint32))
    assert np.array_equal(got_label, expected_label)
    torch_image, torch_label = transform.apply(torch.from_numpy(image), torch.from_numpy(label), placement,
                                               transform.mean_tensor(image.shape, torch.device("cpu")))
    assert torch.equal(torch_image.view(torch.int32), torch.from_numpy(got_image).view(torch.int32))
    assert torch.equal(torch_label, torch.from_numpy(got_label.astype(np.int64)))


def test_a_negative_scale_pads_with_the_negative_zero_of_the_torch_path():
    image, label, _ = _record(2)
    transform = SegmentationTransform(crop_size=(HEIGHT + 4, WIDTH + 8), scale=-0.5)
    placement = Placement(None, 0, 0, False)
    got, _ = transform.place(image, label, placement)
    assert np.signbit(got[:, HEIGHT:, :]).all() and np.signbit(got[:, :, WIDTH:]).all()
    expected, _ = transform.apply(torch.from_numpy(image), torch.from_numpy(label), placement, None)
    assert torch.equal(torch.from_numpy(got).view(torch.int32), expected.view(torch.int32))


@pytest.mark.parametrize(("width", "left"), [(160, 0), (161, 1), (157, 1), (9, 1), (3, 0)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_mirrored_windows_of_any_width_and_offset(width, left, dtype):
    """uint8 windows of whole 8-byte words take the word-reversing path, aligned or not (left 1);
    other widths and types the plain one; both reverse."""
    image, label, mean = _record(3, width=width)
    image = image.astype(dtype)
    transform = SegmentationTransform(crop_size=(HEIGHT - 2, width - left), mirror=True, mean=mean)
    got, got_label = transform.place(image, label, Placement(None, 2, left, True))
    expected, expected_label = _by_hand(image, label, mean, 2, left, HEIGHT - 2, width - left, True,
                                        scale=np.float32(1))
    assert np.array_equal(got, expected) and np.array_equal(got_label, expected_label)


def test_a_batch_of_records_is_placed_as_each_record_alone():
    """place_all works piece by piece across the batch: each slot must still hold its own record's
    window, mirror and padding (records of two sizes, one smaller than the crop)."""
    transform = SegmentationTransform(crop_size=(HEIGHT - 20, WIDTH - 30), mirror=True,
                                      mean=np.array([104.0, 117.0, 123.0], np.float32), scale=float(SCALE))
    records = [_record(seed)[:2] for seed in (4, 5)]
    small = np.random.default_rng(6)
    records.append((small.integers(0, 256, (3, HEIGHT - 40, WIDTH - 60), dtype=np.uint8),
                    small.integers(0, 21, (HEIGHT - 40, WIDTH - 60), dtype=np.uint8)))
    placements = [Placement(None, 3, 29, True), Placement(None, 20, 0, False), Placement(None, 0, 0, True)]
    images_out = np.empty((3, 3, HEIGHT - 20, WIDTH - 30), np.float32)
    labels_out = np.empty((3, HEIGHT - 20, WIDTH - 30), np.float32)
    transform.place_all([image for image, _ in records], [label for _, label in records], placements,
                        images_out, labels_out)
    for (image, label), placement, got_image, got_label in zip(records, placements, images_out, labels_out,
                                                              strict=True):
        alone_image, alone_label = transform.place(image, label, placement)
        assert np.array_equal(got_image.view(np.uint32), alone_image.view(np.uint32))
        assert np.array_equal(got_label, alone_label)
