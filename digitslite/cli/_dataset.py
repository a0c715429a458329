"""A dataset folder's dataset.json as the commands use it: read once per command, with one message
for a folder whose dataset.json or class list cannot be read."""
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digitslite.caffe.template import DEFAULT_IGNORE_LABEL
from digitslite.errors import UserError
from digitslite.fileio import read_json
from digitslite.layout import DatasetFiles

MADE_BY = "give a folder made by `digitslite dataset create`"


@dataclass(frozen=True)
class DatasetJson:
    """dataset.json of the dataset folder `folder`; `info` is None when the folder has none."""

    folder: Path
    info: dict[str, Any] | None

    @property
    def path(self) -> Path:
        return DatasetFiles(self.folder).info_file

    @classmethod
    def read(cls, folder: Path) -> "DatasetJson":
        path = DatasetFiles(folder).info_file
        if not path.is_file():
            return cls(folder, None)
        try:
            info = read_json(path)
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read it ({exc}); {MADE_BY}") from None
        if not isinstance(info, dict):
            raise UserError(f"{path}: is not a JSON object; {MADE_BY}")
        return cls(folder, info)

    def labels(self) -> tuple[int, int]:
        """The class count (a colorization dataset's ab bins) and the ignore value."""
        try:
            if self.info is None:
                raise ValueError("there is no such file")
            return len(self.info["classes"]), int(self.info.get("ignore_label", DEFAULT_IGNORE_LABEL))
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{self.path}: cannot read the class list ({exc}); {MADE_BY}") from None
