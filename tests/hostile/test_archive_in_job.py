"""Item 9, extraction in the job: a dataset request only saves the uploaded archive and checks its
member list (names, kinds, count, declared sizes); the job unpacks it into inputs/ as its first
phase, whole or not at all, counting the bytes it writes against the same limits."""
import io
import random
import struct
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from digitslite.archives import UnsafeArchiveError, list_archive
from digitslite.jobs.folder import JobFolder
from digitslite.jobs.runners.context import JobStopped, RunContext
from digitslite.jobs.runners.dataset import unpack_upload
from tests.hostile.conftest import job_folders


def _demo_zip(demo: Path, prefix: str = "", extra: dict[str, bytes] | None = None) -> bytes:
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder in ("images", "labels"):
            for path in sorted((demo / folder).iterdir()):
                archive.write(path, f"{prefix}{folder}/{path.name}")
        for name, content in (extra or {}).items():
            archive.writestr(name, content)
    return data.getvalue()


def _post(client, archive: bytes, name: str = "scenes.zip", **fields):
    return client.post("/api/v1/datasets", data={"archive": (io.BytesIO(archive), name), **fields},
                       content_type="multipart/form-data")


def _folder_of(client, response) -> JobFolder:
    assert response.status_code == 201, response.get_data(as_text=True)
    config = client.application.extensions["digitslite"].config
    return JobFolder(config.jobs_dir / response.get_json()["jobs"][0]["id"])


def _created(client, archive: bytes, name: str = "scenes.zip", **fields) -> JobFolder:
    return _folder_of(client, _post(client, archive, name, **fields))


class StopAfter:
    """A stop flag that is raised at its `calls`-th look, as an abort arriving mid-way would be."""

    def __init__(self, calls: int | None):
        self.calls, self.seen = calls, 0

    def __call__(self) -> bool:
        self.seen += 1
        return self.calls is not None and self.seen >= self.calls


def _unpack(folder: JobFolder, stop_after: int | None = None) -> None:
    unpack_upload(RunContext(folder, folder.spec(), lambda fraction, message: None, StopAfter(stop_after)))


def test_the_request_lists_the_archive_and_the_job_unpacks_it(client, demo, tmp_path):
    archive = _demo_zip(demo, "upload/")
    folder = _created(client, archive, images="upload/images", labels="upload/labels")
    assert sorted(path.name for path in folder.path.iterdir()) == ["job.json", "state.json", "upload"]
    assert (folder.upload_dir / "scenes.zip").read_bytes() == archive
    assert not folder.inputs_dir.exists()
    assert job_folders(tmp_path / "jobs") == [folder.id]  # the request's scratch folder is gone too
    params = folder.spec().params
    assert params["paths"]["images"] == "upload/images" and params["paths"]["val_images"] is None
    assert params["archive"]["declared_bytes"] == sum(path.stat().st_size for name in ("images", "labels")
                                             for path in (demo / name).iterdir())

    _unpack(folder)
    for name in ("images", "labels"):
        assert sorted(path.name for path in (folder.inputs_dir / "upload" / name).iterdir()) == \
            sorted(path.name for path in (demo / name).iterdir())
    first = sorted((demo / "images").iterdir())[0]
    assert (folder.inputs_dir / "upload" / "images" / first.name).read_bytes() == first.read_bytes()


def test_a_tar_archive_is_listed_in_the_request_too(client, demo):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as archive:
        for folder in ("images", "labels"):
            archive.add(demo / folder, folder)
    folder = _created(client, data.getvalue(), "scenes.tar.gz")
    assert folder.spec().params["paths"]["labels"] == "labels" and not folder.inputs_dir.exists()
    _unpack(folder)
    assert len(list((folder.inputs_dir / "labels").iterdir())) == len(list((demo / "labels").iterdir()))


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"images": "upload/nothing"}, "images", "has no 'upload/nothing'"),
    ({"images": "../upload/images"}, "images", "outside the uploaded archive"),
    ({"classes": "upload/images"}, "classes", "has no 'upload/images'"),  # a folder, not a file
    ({}, "archive", "must hold the folders images/ and labels/")])
def test_paths_are_checked_against_the_member_list(client, demo, tmp_path, fields, field, words):
    response = _post(client, _demo_zip(demo, "upload/"), **fields)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["field"] == field and words in error["message"]
    assert job_folders(tmp_path / "jobs") == []


def test_a_member_given_twice_is_refused_in_the_request(client, demo, tmp_path):
    data = io.BytesIO(_demo_zip(demo))
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(data, "a") as zipped:
        zipped.writestr("images/twice.png", b"a")
        zipped.writestr("images/twice.png", b"b")
    response = _post(client, data.getvalue())
    assert response.status_code == 422 and "same path as another member" in \
        response.get_json()["error"]["message"]
    assert job_folders(tmp_path / "jobs") == []


def _lying_zip(demo: Path, real_size: int, declared: int) -> bytes:
    """The demo pairs and one member whose central directory entry declares `declared` bytes for
    `real_size` zeros: the request, which trusts the directory, cannot see it."""
    name = b"images/zeros.png"
    raw = bytearray(_demo_zip(demo, extra={name.decode(): bytes(real_size)}))
    entry = raw.find(b"PK\x01\x02")  # the central directory's entries: the name starts at byte 46
    while raw[entry + 46:entry + 46 + len(name)] != name:
        entry = raw.find(b"PK\x01\x02", entry + 4)
    struct.pack_into("<I", raw, entry + 24, declared)  # the uncompressed size
    return bytes(raw)


def test_a_lying_archive_fails_the_job_naming_it_and_leaves_nothing(client, demo):
    archive = _lying_zip(demo, real_size=8 << 20, declared=100)
    assert list_archive(io.BytesIO(archive), max_bytes=1 << 20, field="archive").declared_bytes < 1 << 20
    folder = _created(client, archive, "lying.zip")
    with pytest.raises(UnsafeArchiveError) as failed:
        _unpack(folder)
    message = str(failed.value)
    assert message.startswith("the uploaded archive lying.zip cannot be unpacked: member 'images/zeros.png'")
    assert "upload them as a new dataset" in message and failed.value.field == "archive"
    assert not failed.value.retry_helps
    assert sorted(path.name for path in folder.path.iterdir()) == ["job.json", "state.json", "upload"]


def test_the_job_applies_the_limits_itself(client, demo):
    """The job does not rely on the request's check: given a smaller limit than the request had, it
    refuses the archive and leaves nothing unpacked."""
    folder = _created(client, _demo_zip(demo, extra={"images/big.png": random.Random(0).randbytes(3 << 20)}))
    spec = folder.spec()
    spec.params["archive"]["max_bytes"] = 1 << 20
    with pytest.raises(UnsafeArchiveError, match="cannot be unpacked: the archive unpacks to more than 1 MiB"
                       ):
        unpack_upload(RunContext(folder, spec, lambda fraction, message: None, StopAfter(None)))
    assert not folder.inputs_dir.exists() and not list(folder.path.glob(".inputs.partial-*"))


def test_an_abort_while_unpacking_leaves_nothing_and_a_resume_unpacks_again(client, demo):
    folder = _created(client, _demo_zip(demo))
    with pytest.raises(JobStopped):
        _unpack(folder, stop_after=3)  # after two members are written
    assert not folder.inputs_dir.exists() and not list(folder.path.glob(".inputs.partial-*"))

    killed = folder.path / ".inputs.partial-deadbeef"  # what a SIGKILLed run leaves
    (killed / "images").mkdir(parents=True)
    (killed / "images" / "half.png").write_bytes(b"half")
    _unpack(folder)
    assert not killed.exists()
    assert sorted(path.name for path in (folder.inputs_dir / "images").iterdir()) == \
        sorted(path.name for path in (demo / "images").iterdir())


def test_a_clone_gets_the_archive_or_the_unpacked_inputs(client, demo):
    folder = _created(client, _demo_zip(demo))
    clone = _folder_of(client, client.post(f"/api/v1/jobs/{folder.id}/clone", json={}))
    assert (clone.upload_dir / "scenes.zip").read_bytes() == (folder.upload_dir / "scenes.zip").read_bytes()
    assert not clone.inputs_dir.exists() and clone.spec().params["archive"]["name"] == "scenes.zip"

    _unpack(folder)
    second = _folder_of(client, client.post(f"/api/v1/jobs/{folder.id}/clone", json={}))
    assert not second.upload_dir.exists() and "archive" not in second.spec().params
    assert sorted(path.name for path in (second.inputs_dir / "labels").iterdir()) == \
        sorted(path.name for path in (demo / "labels").iterdir())


@pytest.mark.parametrize(("filename", "stored"), [
    ("../../evil.zip", "evil.zip"), ("x" * 300 + ".zip", "x" * 96 + ".zip"), ("\u00e9t\u00e9.zip", "ete.zip"),
    ("\u4e2d\u6587", "archive")])
def test_the_upload_is_kept_under_a_safe_name(client, demo, filename, stored):
    folder = _created(client, _demo_zip(demo), filename)
    assert [path.name for path in folder.upload_dir.iterdir()] == [stored]
    assert folder.spec().params["archive"]["name"] == stored


MEMBER_NAMES = ["images/a.png", "labels/a.png", "images/", "labels/", "./images/b.png", "images//c.png",
                "../x.png", "/etc/x", "C:/x", "a\\b", "images/a.png/x", "images", "x" * 300,
                "\u00e9/\u00e8.png", "images/" + "y" * 250 + ".png", ".", "", " ", "images/\x7f.png",
                "labels/.."]


@st.composite
def archives(draw) -> bytes:
    """A small zip or tar.gz: an image and its label, with hostile and ordinary member names around
    them (duplicates included)."""
    names = draw(st.lists(st.one_of(st.sampled_from(MEMBER_NAMES), st.text(max_size=12)), max_size=4))
    names[draw(st.integers(0, len(names))):0] = ["images/a.png", "labels/a.png"]
    data = io.BytesIO()
    if draw(st.booleans()):
        with warnings.catch_warnings(), zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as archive:
            warnings.simplefilter("ignore")  # duplicate names are the point
            for name in names:
                archive.writestr(name or "_", b"\x89PNG" * draw(st.integers(0, 3)))
    else:
        with tarfile.open(fileobj=data, mode="w:gz") as archive:
            for name in names:
                member = tarfile.TarInfo(name)
                member.type = draw(st.sampled_from([tarfile.REGTYPE, tarfile.REGTYPE, tarfile.DIRTYPE]))
                content = b"\x89PNG" * draw(st.integers(0, 3)) if member.isfile() else b""
                member.size = len(content)
                archive.addfile(member, io.BytesIO(content))
    return data.getvalue()


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(archive=archives(), fields=st.dictionaries(st.sampled_from(["images", "labels", "classes"]),
                                                   st.sampled_from(MEMBER_NAMES), max_size=2))
def test_any_archive_is_refused_in_the_request_or_unpacked_whole_by_the_job(client, tmp_path, archive,
                                                                            fields):
    """Bounded: the request never answers 5xx and a refusal leaves nothing; an accepted archive is
    unpacked by its job whole, or refused by name with nothing left behind."""
    jobs_dir = tmp_path / "jobs"
    before = set(job_folders(jobs_dir))
    response = _post(client, archive, **fields)
    assert response.status_code < 500, response.get_data(as_text=True)
    if response.status_code != 201:
        assert set(job_folders(jobs_dir)) == before and response.get_json()["error"]["message"]
        return
    folder = _folder_of(client, response)
    event("accepted")
    try:
        _unpack(folder)
    except UnsafeArchiveError as exc:
        assert exc.field == "archive" and not folder.inputs_dir.exists()
    else:
        assert (folder.inputs_dir / folder.spec().params["paths"]["images"]).is_dir()
    assert not list(folder.path.glob(".inputs.partial-*"))


def test_a_member_name_too_long_for_a_file_system_is_refused_in_the_request(client, demo, tmp_path):
    response = _post(client, _demo_zip(demo, extra={"images/" + "y" * 252 + ".png": b"x"}))
    assert response.status_code == 422 and "longer than file systems allow" in \
        response.get_json()["error"]["message"]
    assert job_folders(tmp_path / "jobs") == []
