"""digitslite.datasets.reader: one environment per LMDB folder, however the folder is named."""
import lmdb

from digitslite.datasets.reader import close_readers, db_value


def _write(path, value: bytes) -> None:
    path.mkdir(parents=True)
    with lmdb.open(str(path), map_size=1 << 20) as env, env.begin(write=True) as txn:
        txn.put(b"000000000", value)


def test_two_names_of_one_folder_read_through_one_environment(tmp_path):
    """py-lmdb refuses a second environment of one folder in a process: a link must not open one."""
    _write(tmp_path / "db", b"first")
    (tmp_path / "link").symlink_to(tmp_path / "db")
    try:
        assert db_value(tmp_path / "db", b"000000000") == b"first"
        assert db_value(tmp_path / "link", b"000000000") == b"first"
    finally:
        close_readers()


def test_a_link_pointed_elsewhere_is_followed_after_the_readers_close(tmp_path):
    _write(tmp_path / "old", b"old")
    _write(tmp_path / "new", b"new")
    link = tmp_path / "current"
    link.symlink_to(tmp_path / "old")
    try:
        assert db_value(link, b"000000000") == b"old"
        close_readers()
        link.unlink()
        link.symlink_to(tmp_path / "new")
        assert db_value(link, b"000000000") == b"new"
    finally:
        close_readers()
