"""Reading ../shared/caffe_golden (real BVLC Caffe's numbers) and its comparison rule.

The set's README fixes the rule: err = max|got − expected| / max(max|expected|, 1e-6) per array,
1e-4 for forward values, 1e-3 for gradients and 20-iteration training, 0 for copies and indices.
Outside CI a missing set skips with the reason; under CI=true it fails, as with peer_nets.
"""
import json
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "caffe_golden"

FORWARD = 1e-4
GRADIENT = 1e-3


def golden_dir() -> Path:
    """The golden set's folder, or skip (fail under CI) when it is absent."""
    if (GOLDEN_DIR / "index.json").is_file():
        return GOLDEN_DIR
    reason = f"the Caffe golden set {GOLDEN_DIR} is not present (../shared/caffe_golden beside the checkout)"
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def index() -> dict:
    """index.json, or an empty index when the set is absent (each test then skips or fails)."""
    path = GOLDEN_DIR / "index.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def case_names(section: str) -> list[str]:
    """The case names of one section, from index.json or else the folder listing; a placeholder
    when the set is absent, so the parametrized test still runs once and skips with the reason."""
    listed = index().get(section)
    if listed:
        return sorted(listed)
    folder = GOLDEN_DIR / section
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else ["<absent>"]


def relative_error(got: np.ndarray, expected: np.ndarray) -> float:
    """The README's err: the largest absolute difference relative to the largest expected value."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        raise AssertionError(f"shape {got.shape} differs from Caffe's {expected.shape}")
    if not expected.size:
        return 0.0
    return float(np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-6))


def assert_close(label: str, got: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    """Fail naming the array and its err when err exceeds the tolerance (0: must be identical)."""
    err = relative_error(got, expected)
    if tolerance == 0:
        assert np.array_equal(np.asarray(got, dtype=expected.dtype), expected), \
            f"{label}: must equal Caffe's exactly, err {err:.3g}"
    else:
        assert err <= tolerance, f"{label}: err {err:.3g} exceeds {tolerance:g}"
