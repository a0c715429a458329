"""Item 9: sensible limits. A JSON body is small; an archive is refused by its member count and its
declared sizes before anything is unpacked, and by its compression ratio while unpacking."""
import io
import tarfile
import zipfile

import pytest

from digitslite.archives import MAX_MEMBERS, MAX_RATIO, UnsafeArchiveError, extract_archive
from digitslite.server.config import MAX_JSON_BODY_BYTES, ServerConfig
from tests.hostile.conftest import job_folders


def test_a_huge_json_body_is_refused_unread(client):
    body = b'{"name": "' + b"x" * (MAX_JSON_BODY_BYTES + 1) + b'"}'
    response = client.post("/api/v1/datasets", data=body, content_type="application/json")
    assert response.status_code == 413 and "the request body is larger than 16 MiB" in \
        response.get_json()["error"]["message"]


def test_default_limits_are_the_documented_ones(repo_root):
    config = ServerConfig()
    assert config.max_upload_bytes == 1024 << 20 and config.max_unpack_bytes == 4096 << 20
    assert config.max_archive_members == MAX_MEMBERS == 10_000 and MAX_RATIO == 100
    readme = (repo_root / "README.md").read_text()
    for line in ("`DIGITSLITE_MAX_UPLOAD_MB` | ", "`DIGITSLITE_MAX_UNPACK_MB` | ",
                 "`DIGITSLITE_MAX_ARCHIVE_MEMBERS` | ", "`DIGITSLITE_ALLOWED_HOSTS` | "):
        assert line in readme


def _bomb() -> io.BytesIO:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images/zeros.png", bytes(64 << 20))  # 64 MiB of zeros in about 64 KiB
    data.seek(0)
    return data


def test_a_zip_bomb_is_refused_from_its_directory_before_unpacking(tmp_path):
    with pytest.raises(UnsafeArchiveError, match=f"more than {MAX_RATIO} times its own size"):
        extract_archive(_bomb(), tmp_path, max_bytes=4096 << 20, field="archive")
    assert not any(tmp_path.iterdir())


def test_a_tar_bomb_is_stopped_by_the_ratio_while_unpacking(tmp_path):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        member = tarfile.TarInfo("images/zeros.png")
        member.size = 64 << 20
        archive.addfile(member, io.BytesIO(bytes(member.size)))
    data.seek(0)
    with pytest.raises(UnsafeArchiveError, match="times its own size"):
        extract_archive(data, tmp_path, max_bytes=4096 << 20, field="archive")


def test_too_many_members_are_refused_before_unpacking(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for number in range(21):
            archive.writestr(f"images/{number}.png", b"x")
    data.seek(0)
    with pytest.raises(UnsafeArchiveError, match="more than 20 files"):
        extract_archive(data, tmp_path, max_bytes=10**6, field="archive", max_members=20)
    assert not any(tmp_path.iterdir())


def test_an_uploaded_bomb_leaves_no_job(client, tmp_path):
    response = client.post("/api/v1/datasets", data={"archive": (_bomb(), "bomb.zip")},
                           content_type="multipart/form-data")
    assert response.status_code == 422 and response.get_json()["error"]["field"] == "archive"
    assert job_folders(tmp_path / "jobs") == []
