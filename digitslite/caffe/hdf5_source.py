"""Caffe's HDF5Data source: a text file listing .h5 files, one path a line, each holding one
dataset per top of the layer, all with the same number of rows (axis 0).

As in Caffe, values are read as float32, a relative .h5 path is relative to the working
directory, rows run through the files in list order and wrap around, and with `shuffle` every
pass visits the files in a new order and each file's rows in a new order (files are not mixed).
Each file is read whole when first needed, as Caffe does.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from digitslite.caffe import caffe_pb2
from digitslite.errors import UserError

Shape = tuple[int, ...]


def _h5py():
    import h5py  # here: only nets with HDF5Data need it

    return h5py


def source_files(layer: caffe_pb2.LayerParameter, base: Path | None = None) -> list[Path]:
    """The .h5 files an HDF5Data layer reads; `source` is resolved against `base` (or the working
    directory), the listed files against the working directory."""
    source = Path(layer.hdf5_data_param.source).expanduser()
    if not layer.hdf5_data_param.source:
        raise UserError(f"layer '{layer.name}' (HDF5Data): hdf5_data_param.source is empty; set it to a "
                        "text file listing the .h5 files, one per line")
    path = source if source.is_absolute() or base is None else base / source
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"layer '{layer.name}' (HDF5Data): cannot read the source list {path} "
                        f"({exc.strerror}); give hdf5_data_param.source as a text file of .h5 "
                        "paths") from None
    files = [Path(line.strip()).expanduser() for line in lines if line.strip()]
    if not files:
        raise UserError(f"layer '{layer.name}' (HDF5Data): the source list {path} names no .h5 file; "
                        "list one path per line")
    return files


def _open(layer: caffe_pb2.LayerParameter, path: Path):
    try:
        return _h5py().File(path, "r")
    except OSError as exc:
        raise UserError(f"layer '{layer.name}' (HDF5Data): cannot open {path} as an HDF5 file ({exc}); "
                        "fix the path in the source list (relative paths are from the working "
                        "directory)") from None


def _dataset(layer: caffe_pb2.LayerParameter, handle, path: Path, top: str):
    if top not in handle:
        raise UserError(f"layer '{layer.name}' (HDF5Data): {path} has no dataset '{top}' for the top of "
                        f"that name (it has: {', '.join(sorted(handle)) or 'none'}); name each dataset "
                        "after a top")
    return handle[top]


def top_shapes(layer: caffe_pb2.LayerParameter, base: Path | None = None) -> list[Shape]:
    """Each top's shape: (batch_size, the dataset's shape after axis 0), from the first file."""
    batch = layer.hdf5_data_param.batch_size
    if batch < 1:
        raise UserError(f"layer '{layer.name}' (HDF5Data): batch_size is not set; give "
                        "hdf5_data_param { batch_size: N }")
    path = source_files(layer, base)[0]
    with _open(layer, path) as handle:
        return [(batch, *_dataset(layer, handle, path, top).shape[1:]) for top in layer.top]


class HDF5Rows:
    """Row s of the endless sequence an HDF5Data layer reads (pass s // total, row s % total)."""

    def __init__(self, layer: caffe_pb2.LayerParameter, base: Path | None, seed: Sequence[int]) -> None:
        self.layer, self.seed = layer, tuple(seed)
        self.files = source_files(layer, base)
        self.shuffle = layer.hdf5_data_param.shuffle
        self.counts = [self._count(path) for path in self.files]
        self.total = sum(self.counts)
        if self.total == 0:
            raise UserError(f"layer '{layer.name}' (HDF5Data): its files hold no rows; give files with data")
        self._loaded: tuple[int, dict[str, np.ndarray]] | None = None
        self._order: tuple[int, list[tuple[int, np.ndarray]]] | None = None

    def _count(self, path: Path) -> int:
        with _open(self.layer, path) as handle:
            rows = {_dataset(self.layer, handle, path, top).shape[0] for top in self.layer.top}
        if len(rows) != 1:
            raise UserError(f"layer '{self.layer.name}' (HDF5Data): the datasets of {path} differ in their "
                            f"number of rows ({sorted(rows)}); give every top's dataset the same rows")
        return rows.pop()

    def _file(self, index: int) -> dict[str, np.ndarray]:
        if self._loaded is None or self._loaded[0] != index:
            path = self.files[index]
            with _open(self.layer, path) as handle:
                arrays = {top: np.asarray(_dataset(self.layer, handle, path, top), dtype=np.float32)
                          for top in self.layer.top}
            self._loaded = (index, arrays)
        return self._loaded[1]

    def _pass_order(self, number: int) -> list[tuple[int, np.ndarray]]:
        """(file, its row order) in the order pass `number` visits them."""
        if self._order is None or self._order[0] != number:
            files = list(range(len(self.files)))
            rows = [np.arange(count) for count in self.counts]
            if self.shuffle:
                rng = np.random.default_rng([*self.seed, number])
                files = list(rng.permutation(files))
                rows = [rng.permutation(order) for order in rows]
            self._order = (number, [(index, rows[index]) for index in files])
        return self._order[1]

    def rows(self, start: int, count: int) -> dict[str, np.ndarray]:
        """Rows start .. start + count − 1 of the sequence, stacked per top."""
        picked: dict[str, list[np.ndarray]] = {top: [] for top in self.layer.top}
        for sample in range(start, start + count):
            within = sample % self.total
            for index, order in self._pass_order(sample // self.total):
                if within < len(order):
                    arrays = self._file(index)
                    for top in self.layer.top:
                        picked[top].append(arrays[top][order[within]])
                    break
                within -= len(order)
        return {top: np.stack(values) for top, values in picked.items()}
