"""Users of a multi-user server: names, scrypt password hashes, API tokens (kept only as hashes).

Stored in <jobs dir>/users.json (mode 0600), edited by `digitslite users` and re-read by the
server when it changes. No user at all means single-user mode.
"""
import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from digitslite.errors import UserError
from digitslite.fileio import read_json, write_json_atomically
from digitslite.jobs.lock import JobLock

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
MIN_PASSWORD_LENGTH = 8
TOKEN_PREFIX = "dlt_"
MAX_SESSIONS = 20  # per user; logging in once more ends the oldest
_SCRYPT = {"n": 2 ** 14, "r": 8, "p": 1}


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    params = "$".join(str(_SCRYPT[key]) for key in ("n", "r", "p"))
    return f"scrypt${params}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = base64.b64decode(digest)
    actual = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                            dklen=len(expected))
    return hmac.compare_digest(actual, expected)


def _token_hash(token: str) -> str:
    # Tokens are 256 random bits: a plain hash is enough, unlike a password.
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class User:
    name: str
    password: str
    admin: bool = False
    tokens: list[dict] = field(default_factory=list)  # {"id", "hash", "created"}
    # Hashes of the ids of this user's live browser sessions: a session not listed here has ended.
    sessions: list[str] = field(default_factory=list)


class UserStore:
    def __init__(self, path: Path):
        self.path = path
        self._cache: tuple[int, dict[str, User]] | None = None

    def _mtime(self) -> int:
        try:
            return self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return 0

    def users(self) -> dict[str, User]:
        mtime = self._mtime()
        if self._cache is None or self._cache[0] != mtime:
            data = read_json(self.path) if mtime else {"users": []}
            self._cache = (mtime, {entry["name"]: User(**entry) for entry in data["users"]})
        return self._cache[1]

    def has_users(self) -> bool:
        return bool(self.users())

    def get(self, name: str) -> User | None:
        return self.users().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        user = self.get(name)
        if user is None:
            hash_password(password)  # same time as a wrong password, so names cannot be probed
            return None
        return user if check_password(password, user.password) else None

    def session_live(self, user: User, session_id: str) -> bool:
        digest = _token_hash(session_id)
        return any(hmac.compare_digest(entry, digest) for entry in user.sessions)

    def user_for_token(self, token: str) -> User | None:
        digest = _token_hash(token)
        for user in self.users().values():
            if any(hmac.compare_digest(entry["hash"], digest) for entry in user.tokens):
                return user
        return None

    # --- editing (the `digitslite users` command) ----------------------------------------------

    def _edit(self, change) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with JobLock(self.path.with_name(".users.lock")) as lock:
            lock.acquire(blocking=True)
            self._cache = None
            users = dict(self.users())
            change(users)
            write_json_atomically(self.path, {"users": [asdict(user) for user in users.values()]})
            os.chmod(self.path, 0o600)
            self._cache = None

    def add(self, name: str, password: str, *, admin: bool) -> None:
        if not NAME_PATTERN.match(name):
            raise UserError(f"user name {name!r}: use 1-32 lower-case letters, digits, '.', '_' or '-', "
                            "starting with a letter")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")

        def change(users: dict[str, User]) -> None:
            if name in users:
                raise UserError(f"user {name!r} already exists; use `digitslite users passwd {name}`")
            users[name] = User(name, hash_password(password), admin)
        self._edit(change)

    def set_password(self, name: str, password: str) -> None:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise UserError(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
        def change(users: dict[str, User]) -> None:
            user = self._existing(users, name)
            user.password = hash_password(password)
            user.sessions = []  # whoever knew the old password is logged out
        self._edit(change)

    def start_session(self, name: str) -> str:
        """A new session id for `name` (kept only as a hash), ending the oldest beyond MAX_SESSIONS."""
        session_id = secrets.token_urlsafe(32)

        def change(users: dict[str, User]) -> None:
            user = self._existing(users, name)
            user.sessions = [*user.sessions, _token_hash(session_id)][-MAX_SESSIONS:]
        self._edit(change)
        return session_id

    def end_session(self, name: str, session_id: str) -> None:
        digest = _token_hash(session_id)

        def change(users: dict[str, User]) -> None:
            if name in users:
                users[name].sessions = [entry for entry in users[name].sessions if entry != digest]
        self._edit(change)

    def remove(self, name: str) -> None:
        def change(users: dict[str, User]) -> None:
            self._existing(users, name)
            del users[name]
        self._edit(change)

    def new_token(self, name: str) -> str:
        """A new API token for `name`; only its hash is kept, so it is shown this once."""
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        entry = {"id": secrets.token_hex(4), "hash": _token_hash(token), "created": time.time()}
        self._edit(lambda users: self._existing(users, name).tokens.append(entry))
        return token

    def revoke_tokens(self, name: str) -> int:
        removed = []

        def change(users: dict[str, User]) -> None:
            user = self._existing(users, name)
            removed.extend(user.tokens)
            user.tokens = []
        self._edit(change)
        return len(removed)

    @staticmethod
    def _existing(users: dict[str, User], name: str) -> User:
        if name not in users:
            raise UserError(f"no user named {name!r}; add one with `digitslite users add {name}`")
        return users[name]
