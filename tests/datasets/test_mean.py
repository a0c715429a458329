"""The mean image's exact sum: past the point where its 16-bit partial sums fold into the total,
split over processes and merged, and switched off by a second image size."""
import numpy as np

from digitslite.datasets.mean import MeanAccumulator

COUNT = 600  # more than twice the 257 images a 16-bit partial sum holds


def image(k: int) -> np.ndarray:
    """2 x 3 RGB image k: red 7k mod 256, green 255, blue 0; the last pixel is k mod 2 throughout."""
    pixels = np.empty((2, 3, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = (7 * k) % 256, 255, 0
    pixels[1, 2] = k % 2
    return pixels


def expected_red() -> float:
    return sum((7 * k) % 256 for k in range(COUNT)) / COUNT  # Python integers: no overflow possible


def test_the_sum_of_many_images_is_exact_and_comes_out_bgr_channel_first():
    mean = MeanAccumulator()
    for k in range(COUNT):
        mean.add(image(k))

    bgr = mean.mean_bgr()

    assert bgr.shape == (3, 2, 3)
    assert bgr[2, 0, 0] == expected_red() and bgr[1, 0, 0] == 255.0 and bgr[0, 0, 0] == 0.0
    assert bgr[:, 1, 2].tolist() == [0.5, 0.5, 0.5]  # k mod 2 over 600 images


def test_sums_kept_in_separate_processes_merge_to_the_same_mean():
    parts = [MeanAccumulator() for _ in range(3)]
    for k in range(COUNT):
        parts[k % 3 if k < 400 else 2].add(image(k))  # uneven shares, one past a fold
    merged = MeanAccumulator()
    for part in parts:
        merged.merge(part)

    assert merged.count == COUNT
    assert merged.mean_bgr()[2, 0, 0] == expected_red()


def test_a_second_image_size_switches_the_mean_off_here_and_after_a_merge():
    mixed = MeanAccumulator()
    mixed.add(image(1))
    mixed.add(np.zeros((4, 4, 3), np.uint8))
    mixed.add(image(2))
    assert mixed.mean_bgr() is None

    merged = MeanAccumulator()
    merged.add(image(1))
    merged.merge(mixed)
    assert merged.mean_bgr() is None
    assert MeanAccumulator().mean_bgr() is None
