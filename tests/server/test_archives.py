"""Safe unpacking: members that would land outside the target, links and bombs are refused."""
import io
import stat
import tarfile
import zipfile

import pytest

from digitslite.archives import UnsafeArchiveError, extract_archive


def _zip(members: dict[str, bytes], link: str | None = None) -> io.BytesIO:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
        if link is not None:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    data.seek(0)
    return data


def _tar(member: tarfile.TarInfo, content: bytes = b"") -> io.BytesIO:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        member.size = len(content)
        archive.addfile(member, io.BytesIO(content) if content else None)
    data.seek(0)
    return data


@pytest.mark.parametrize(("name", "words"), [
    ("../evil.txt", "climbs out"), ("images/../../evil.txt", "climbs out"), ("/etc/evil.txt", "absolute"),
    ("C:/evil.txt", "absolute"), ("images\\..\\evil.txt", "backslash")])
def test_zip_members_outside_the_target_are_refused(tmp_path, name, words):
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(UnsafeArchiveError, match=words) as refused:
        extract_archive(_zip({"images/ok.png": b"x", name: b"evil"}), target, max_bytes=10**6,
                        field="archive")
    assert refused.value.field == "archive"
    assert not (tmp_path / "evil.txt").exists()


def test_zip_links_and_bombs_are_refused(tmp_path):
    with pytest.raises(UnsafeArchiveError, match="is a link"):
        extract_archive(_zip({}, link="images/passwd"), tmp_path, max_bytes=10**6, field="archive")
    bomb = _zip({"big.bin": bytes(3 * 1024 * 1024)})
    with pytest.raises(UnsafeArchiveError, match="more than 1 MiB"):
        extract_archive(bomb, tmp_path, max_bytes=1024 * 1024, field="archive", max_ratio=10**6)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.CHRTYPE, tarfile.FIFOTYPE])
def test_tar_links_and_special_files_are_refused(tmp_path, kind):
    member = tarfile.TarInfo("labels/x.png")
    member.type, member.linkname = kind, "/etc/passwd"
    with pytest.raises(UnsafeArchiveError, match="link or special file"):
        extract_archive(_tar(member), tmp_path, max_bytes=10**6, field="archive")


def test_tar_traversal_is_refused_and_good_archives_unpack(tmp_path):
    with pytest.raises(UnsafeArchiveError, match="climbs out"):
        extract_archive(_tar(tarfile.TarInfo("../x.png"), b"x"), tmp_path, max_bytes=10**6, field="archive")
    good = tmp_path / "good.zip"
    good.write_bytes(_zip({"images/a.png": b"a", "labels/a.png": b"b", "./images/": b""}).getvalue())
    target = tmp_path / "out"
    target.mkdir()
    extract_archive(good, target, max_bytes=10**6, field="archive")
    assert (target / "images" / "a.png").read_bytes() == b"a" and (target / "labels" / "a.png").exists()
    not_archive = tmp_path / "plain.txt"
    not_archive.write_text("hello")
    with pytest.raises(UnsafeArchiveError, match="neither a zip nor a tar"):
        extract_archive(not_archive, target, max_bytes=10**6, field="archive")
