"""Login back-off: after a few wrong passwords for one user name or from one address, each further
try must wait twice as long as the last, up to a quarter of an hour. While a wait runs, no password
is even checked, so guessing costs time whether the guess is right or not."""
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_TRIES = 5
MAX_WAIT_S = 900.0


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


class LoginThrottle:
    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def _wait_for(self, key: str, now: float) -> float:
        failures = self._failures.get(key)
        if failures is None or failures.count < FREE_TRIES:
            return 0.0
        wait = min(MAX_WAIT_S, 2.0 ** (failures.count - FREE_TRIES))
        return max(0.0, failures.last + wait - now)

    def wait_s(self, *keys: str) -> float:
        """Seconds before another try with these keys (user name, address) is looked at; 0 for now."""
        with self._lock:
            now = self._clock()
            return max(self._wait_for(key, now) for key in keys)

    def failed(self, *keys: str) -> None:
        with self._lock:
            now = self._clock()
            for key in keys:
                failures = self._failures.setdefault(key, _Failures())
                failures.count += 1
                failures.last = now

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
