"""ConfusionMatrix against hand-computed matrices, the FCN definitions and published score rows."""
import json

import numpy as np
import pytest
import torch

from digitslite.engine.metrics import ConfusionMatrix
from digitslite.errors import UserError

# Pairs (truth, prediction): (0,0) (0,1) (1,1) (1,1) (2,0), and one 255 pixel that is ignored.
# Matrix rows [1 1 0] [0 2 0] [1 0 0]; column sums 2 3 0; truth counts 2 2 1.
LABEL = np.array([[0, 0, 1], [1, 2, 255]], dtype=np.uint8)
PREDICTION = np.array([[0, 1, 1], [1, 0, 2]])


def _from_matrix(matrix: list[list[int]]) -> ConfusionMatrix:
    """A ConfusionMatrix fed pixel by pixel so that it holds exactly `matrix`."""
    truth, predicted = np.nonzero(np.ones((len(matrix), len(matrix)), dtype=bool))
    counts = np.array(matrix).reshape(-1)
    confusion = ConfusionMatrix(len(matrix))
    confusion.update(np.repeat(predicted, counts), np.repeat(truth, counts))
    return confusion


def test_hand_computed_matrix_and_every_score():
    confusion = ConfusionMatrix(3)
    confusion.update(PREDICTION, LABEL)
    assert confusion.matrix.dtype == np.int64
    assert confusion.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    summary = confusion.summary()
    assert summary["pixel_accuracy"] == pytest.approx(3 / 5)
    assert summary["per_class_accuracy"] == pytest.approx([1 / 2, 1, 0])
    assert summary["mean_accuracy"] == pytest.approx(1 / 2)
    # IU_i = n_ii / (t_i + column_i - n_ii): 1/(2+2-1), 2/(2+3-2), 0/(1+0-0)
    assert summary["per_class_iu"] == pytest.approx([1 / 3, 2 / 3, 0])
    assert summary["mean_iu"] == pytest.approx(1 / 3)
    assert summary["fw_iu"] == pytest.approx((2 * (1 / 3) + 2 * (2 / 3) + 1 * 0) / 5)
    assert summary["counts"] == {"pixels": 5, "ignored": 1, "label": [2, 2, 1], "predicted": [2, 3, 0]}
    assert summary["out_of_range"] == 0


def test_accumulates_over_updates_not_per_image_means():
    confusion = ConfusionMatrix(2)
    confusion.update(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1]))  # alone: 3/4 correct
    confusion.update(np.array([1]), np.array([0]))  # alone: 0/1 correct
    # dataset-level pixel accuracy 3/5, not the mean of image accuracies (3/4 + 0) / 2
    assert confusion.summary()["pixel_accuracy"] == pytest.approx(3 / 5)
    assert confusion.matrix.tolist() == [[3, 1], [1, 0]]


def test_class_absent_from_truth_and_prediction_is_skipped_in_means():
    confusion = ConfusionMatrix(4)
    confusion.update(PREDICTION, LABEL)
    summary = confusion.summary()
    assert summary["per_class_iu"][3] is None
    assert summary["per_class_accuracy"][3] is None
    assert summary["mean_iu"] == pytest.approx(1 / 3)
    assert summary["mean_accuracy"] == pytest.approx(1 / 2)


def test_class_predicted_but_absent_from_truth_has_iu_zero_and_no_accuracy():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 2]), np.array([0, 0]))
    summary = confusion.summary()
    assert summary["per_class_iu"] == [pytest.approx(1 / 2), None, 0.0]
    assert summary["mean_iu"] == pytest.approx(1 / 4)  # (1/2 + 0) / 2: class 2 counts, class 1 not
    assert summary["per_class_accuracy"] == [pytest.approx(1 / 2), None, None]
    assert summary["mean_accuracy"] == pytest.approx(1 / 2)


def test_ignore_label_pixels_never_reach_the_matrix_whatever_was_predicted():
    confusion = ConfusionMatrix(2, ignore_label=255)
    confusion.update(np.array([1, 1, 0]), np.array([255, 255, 0]))
    assert confusion.matrix.tolist() == [[1, 0], [0, 0]]
    assert confusion.summary()["counts"]["ignored"] == 2
    assert confusion.out_of_range == 0


def test_ignore_label_inside_the_class_range_is_ignored_too():
    confusion = ConfusionMatrix(3, ignore_label=2)
    confusion.update(np.array([0, 1, 0]), np.array([0, 1, 2]))
    assert confusion.matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 0]]


def test_labels_outside_the_class_range_are_counted_not_dropped_silently():
    confusion = ConfusionMatrix(3)
    confusion.update(np.array([0, 1, 2, 0, 1]), np.array([0, 7, 3, -1, 255]))
    assert confusion.out_of_range == 3  # 7, 3 and -1; 255 is ignored
    assert confusion.matrix.sum() == 1
    summary = confusion.summary()
    assert summary["out_of_range"] == 3
    assert summary["counts"]["pixels"] == 1


def test_without_ignore_label_255_is_out_of_range():
    confusion = ConfusionMatrix(3, ignore_label=None)
    confusion.update(PREDICTION, LABEL)
    assert confusion.out_of_range == 1
    assert confusion.summary()["counts"]["ignored"] == 0


def test_shape_mismatch_is_a_clear_error():
    confusion = ConfusionMatrix(3)
    expected = r"prediction shape \(1, 4, 4\) differs from label shape \(1, 1, 4, 4\)"
    with pytest.raises(UserError, match=expected):
        confusion.update(np.zeros((1, 4, 4)), np.zeros((1, 1, 4, 4)))


def test_prediction_outside_the_class_range_is_refused():
    confusion = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        confusion.update(np.array([3]), np.array([0]))


def test_torch_tensors_and_float_labels_are_accepted():
    confusion = ConfusionMatrix(3)
    confusion.update(torch.from_numpy(PREDICTION), torch.from_numpy(LABEL).float())
    assert confusion.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]


def test_merge_adds_every_count():
    first, second = ConfusionMatrix(3), ConfusionMatrix(3)
    first.update(PREDICTION, LABEL)
    second.update(np.array([2, 0]), np.array([2, 9]))
    assert first.merge(second) is first
    assert first.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert first.out_of_range == 1
    assert first.summary()["counts"]["ignored"] == 1


def test_merge_refuses_a_different_class_count():
    with pytest.raises(ValueError, match="3 classes"):
        ConfusionMatrix(2).merge(ConfusionMatrix(3))


def test_empty_matrix_reports_undefined_scores_as_json_null():
    summary = ConfusionMatrix(2).summary()
    assert summary["pixel_accuracy"] is None
    assert summary["mean_iu"] is None
    assert summary["fw_iu"] is None
    json.dumps(summary, allow_nan=False)  # strict JSON: no NaN tokens


def test_agrees_with_a_bincount_reference_written_from_the_definitions():
    generator = np.random.default_rng(0)
    num_classes = 5
    label = generator.integers(0, num_classes, size=(3, 17, 13))
    label[generator.random(label.shape) < 0.1] = 255
    prediction = np.where(generator.random(label.shape) < 0.6, label, generator.integers(0, 4, label.shape))
    prediction[prediction == 255] = 0
    confusion = ConfusionMatrix(num_classes)
    for image in range(3):
        confusion.update(prediction[image], label[image])

    valid = (label >= 0) & (label < num_classes)
    hist = np.bincount(num_classes * label[valid] + prediction[valid], minlength=num_classes**2)
    hist = hist.reshape(num_classes, num_classes)
    assert confusion.matrix.tolist() == hist.tolist()
    diag, rows, cols = np.diag(hist), hist.sum(1), hist.sum(0)
    iu = diag / (rows + cols - diag)
    summary = confusion.summary()
    assert summary["pixel_accuracy"] == pytest.approx(diag.sum() / hist.sum())
    assert summary["mean_accuracy"] == pytest.approx(np.mean(diag / rows))
    assert summary["mean_iu"] == pytest.approx(np.mean(iu))
    assert summary["fw_iu"] == pytest.approx(np.sum(rows / hist.sum() * iu))


# Confusion matrices built so that the FCN definitions give the published score rows of
# modern-anchors §2.4 (percent, rounded as published): a regression vector that fails if any
# score is computed with another convention (per-image means, wrong axis, NaN not skipped, ...).
@pytest.mark.parametrize(("matrix", "published", "decimals"), [
    # FCN paper Table 2, FCN-32s-fixed: 83.0 / 59.7 / 45.4 / 72.0
    ([[77, 17, 6], [1, 749, 4], [72, 70, 4]], (83.0, 59.7, 45.4, 72.0), 1),
    # pytorch-fcn README, original Caffe FCN-8s on seg11valid: 91.23 / 77.61 / 65.51 / 84.55
    ([[2116, 1041, 427], [43, 15510, 28], [205, 10, 620]], (91.23, 77.61, 65.51, 84.55), 2),
])
def test_published_score_rows(matrix, published, decimals):
    summary = _from_matrix(matrix).summary()
    scores = [summary[key] for key in ("pixel_accuracy", "mean_accuracy", "mean_iu", "fw_iu")]
    assert [round(100 * score, decimals) for score in scores] == list(published)
