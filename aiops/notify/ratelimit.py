"""Send-rate limits shared by every notifier instance of the same destination in this process.

DingTalk allows about 20 messages per minute per robot and throttles the robot for 10 minutes when
that is exceeded, so the limit is enforced before sending, never discovered by being throttled.
Buckets are keyed by a digest of the destination (never the token itself), so that the CLI's test
message and the daemon's notifier in one process draw from the same bucket. Only the leader sends,
so a per-process bucket is a per-robot bucket in a deployment.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per ``per`` seconds, bursting up to ``capacity``; plus a hold after throttling."""

    def __init__(self, rate: float, per: float = 60.0, capacity: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or per <= 0:
            raise ValueError("rate and per must be positive")
        self.rate_per_second = rate / per
        self.capacity = float(capacity if capacity is not None else rate)
        self._clock = clock
        self._tokens = self.capacity
        self._stamp = clock()
        self._hold_until = 0.0
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate_per_second)
        self._stamp = now

    def wait_seconds(self) -> float:
        """Seconds until one token is available (0 when one is available now)."""
        with self._lock:
            now = self._clock()
            self._refill(now)
            hold = max(0.0, self._hold_until - now)
            need = 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate_per_second
            return max(hold, need)

    def try_take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._refill(now)
            if now < self._hold_until or self._tokens < 1:
                return False
            self._tokens -= 1
            return True

    def hold(self, seconds: float) -> None:
        """The destination told us to stop (throttled): no sends for ``seconds``, and start empty after."""
        with self._lock:
            now = self._clock()
            self._hold_until = max(self._hold_until, now + seconds)
            self._tokens = 0.0
            self._stamp = now


_BUCKETS: dict[str, TokenBucket] = {}
_BUCKETS_LOCK = threading.Lock()


def shared_bucket(destination: str, rate: float, per: float = 60.0) -> TokenBucket:
    """The process-wide bucket of ``destination`` (hashed: the key may contain a token)."""
    key = hashlib.sha256(destination.encode()).hexdigest()
    with _BUCKETS_LOCK:
        bucket = _BUCKETS.get(key)
        if bucket is None:
            bucket = _BUCKETS[key] = TokenBucket(rate, per)
        return bucket
