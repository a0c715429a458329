"""The user store behind `digitslite users`: names, scrypt passwords, tokens kept only as hashes."""
import subprocess
import sys

import pytest

from digitslite.errors import UserError
from digitslite.server.users import UserStore


def test_passwords_and_tokens(tmp_path):
    store = UserStore(tmp_path / "users.json")
    assert not store.has_users()
    store.add("ann", "long enough", admin=False)
    assert store.authenticate("ann", "long enough").name == "ann"
    assert store.authenticate("ann", "wrong one!") is None
    assert store.authenticate("bob", "long enough") is None
    token = store.new_token("ann")
    assert store.user_for_token(token).name == "ann" and token not in (tmp_path / "users.json").read_text()
    assert "long enough" not in (tmp_path / "users.json").read_text()
    assert store.revoke_tokens("ann") == 1 and store.user_for_token(token) is None
    store.set_password("ann", "another secret")
    assert store.authenticate("ann", "another secret") and not store.authenticate("ann", "long enough")
    store.remove("ann")
    assert not store.has_users()


@pytest.mark.parametrize(("name", "password", "words"), [
    ("Ann", "long enough", "lower-case"), ("a b", "long enough", "lower-case"),
    ("ann", "short", "at least 8")])
def test_bad_names_and_passwords_are_refused(tmp_path, name, password, words):
    with pytest.raises(UserError, match=words):
        UserStore(tmp_path / "users.json").add(name, password, admin=False)


def test_the_command_refuses_duplicates_and_unknown_users(tmp_path):
    def users(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "digitslite", "users", *args, "--jobs-dir", str(tmp_path)]
        return subprocess.run(command, input="long enough\n", capture_output=True, text=True, timeout=60)

    assert users("add", "ann", "--password-stdin").returncode == 0
    again = users("add", "ann", "--password-stdin")
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = users("token", "zed")
    assert missing.returncode == 1 and "no user named 'zed'" in missing.stderr
