"""Server-side paths in requests: resolved (symbolic links followed) and kept inside the data roots."""
from pathlib import Path

from digitslite.server.errors import ApiError


def resolve_data_path(raw: str, roots: tuple[Path, ...], field: str, *, folder: bool = True) -> Path:
    """The real path that `raw` names, refused (403) unless it lies inside one of `roots`.

    A relative path is taken relative to the first data root. `roots` are already resolved.
    """
    if not roots:
        raise ApiError(403, f"{field}: this server has no data roots, so it reads no server-side path; "
                            "upload the files, or start the server with DIGITSLITE_DATA_ROOTS set", field)
    if "\x00" in raw:
        raise ApiError(422, f"{field}: the path contains a NUL character", field)
    path = Path(raw).expanduser()
    resolved = (path if path.is_absolute() else roots[0] / path).resolve()
    if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
        listed = ", ".join(str(root) for root in roots)
        raise ApiError(403, f"{field}: {raw} is outside the data roots ({listed}); move the data under one "
                            "of them or add its folder to DIGITSLITE_DATA_ROOTS", field)
    if folder and not resolved.is_dir():
        raise ApiError(422, f"{field}: {raw} is not an existing folder", field)
    if not folder and not resolved.is_file():
        raise ApiError(422, f"{field}: {raw} is not an existing file", field)
    return resolved
