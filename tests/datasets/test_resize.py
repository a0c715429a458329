"""DIGITS' resize modes on an image/label pair; labels always by nearest neighbour."""
import numpy as np
from PIL import Image

from digitslite.datasets.resize import ResizeSpec, resize_pair

IGNORE = 255


def pair(width: int, height: int, seed: int = 0):
    """A random image and a label made of 2 x 2 blocks (so halving it by nearest is unambiguous)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 5, (height // 2, width // 2), dtype=np.uint8)
    return (Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)), blocks,
            np.kron(blocks, np.ones((2, 2), np.uint8)))


def resize(image, label, mode, width, height):
    return resize_pair(image, label, ResizeSpec(mode, width, height), IGNORE, np.random.default_rng(0))


def test_squash_stretches_the_label_by_nearest_neighbour():
    image, blocks, label = pair(8, 6)

    out_image, out_label = resize(image, label, "squash", 4, 3)

    assert out_image.size == (4, 3)
    assert np.array_equal(out_label, blocks)


def test_crop_keeps_the_centre_at_full_scale_when_the_height_already_fits():
    image, _, label = pair(20, 10)

    out_image, out_label = resize(image, label, "crop", 10, 10)

    assert np.array_equal(out_label, label[:, 5:15])
    assert np.array_equal(np.asarray(out_image), np.asarray(image)[:, 5:15])


def test_fill_shrinks_to_fit_and_pads_the_label_with_ignore():
    image, blocks, label = pair(20, 12)

    out_image, out_label = resize(image, label, "fill", 10, 10)

    assert out_image.size == (10, 10)
    assert np.array_equal(out_label[2:8], blocks)  # 20x12 halves to 10x6, centred: rows 2..7
    assert (out_label[:2] == IGNORE).all() and (out_label[8:] == IGNORE).all()


def test_half_crop_scales_by_the_mean_ratio_then_crops_one_side_and_pads_the_other():
    image, _, label = pair(20, 10)

    out_image, out_label = resize(image, label, "half_crop", 10, 10)

    # ratios 20/10 and 10/10 average to 1.5: 20x10 becomes 13x7; width cut to 10, height padded 1 + 2
    assert out_image.size == (10, 10)
    ignored_rows = [row for row in range(10) if (out_label[row] == IGNORE).all()]
    assert ignored_rows == [0, 8, 9]
    assert not (out_label[1:8] == IGNORE).any()


def test_labels_never_gain_values_that_were_not_in_the_source():
    image, _, label = pair(40, 30, seed=4)

    for mode in ("squash", "crop", "fill", "half_crop"):
        _, out_label = resize(image, label, mode, 17, 13)
        assert set(np.unique(out_label)) <= set(np.unique(label)) | {IGNORE}
