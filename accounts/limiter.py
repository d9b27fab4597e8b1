"""A Redis fixed-window limiter for PIN guesses, per phone and per client, across USSD/SMS/Telegram sessions.

The database lock (`pin_max_attempts` wrong PINs lock the account) stops guessing within one account; this limiter
stops an attacker who spreads guesses over many sessions, channels, or over the several clients who share one
phone. Each attempt takes a slot before the PIN is checked (so parallel guesses cannot slip past the count); a
correct PIN gives its slots back, so only wrong guesses use up the window. Phone numbers are hashed before they
become Redis keys (keyed with the app secret), so the keyspace holds no phone numbers.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from bootstrap import Services

MAX_ATTEMPTS_PER_PHONE_PER_HOUR = 10
MAX_ATTEMPTS_PER_CLIENT_PER_HOUR = 10
WINDOW_SECONDS = 3600
KEY_PREFIX = "pinlimit"


@dataclass(frozen=True)
class Slot:
    """A taken attempt slot: `allowed` False means over a limit, retry after `retry_after_seconds`."""

    allowed: bool
    keys: tuple[str, ...]
    retry_after_seconds: int = 0

    @property
    def retry_after_minutes(self) -> int:
        return max(1, math.ceil(self.retry_after_seconds / 60)) if not self.allowed else 0


class AttemptLimiter:
    def __init__(
        self,
        connection: redis.Redis,
        *,
        per_phone: int = MAX_ATTEMPTS_PER_PHONE_PER_HOUR,
        per_client: int = MAX_ATTEMPTS_PER_CLIENT_PER_HOUR,
        window_seconds: int = WINDOW_SECONDS,
        key_secret: str = "",
    ) -> None:
        self.redis = connection
        self.per_phone = per_phone
        self.per_client = per_client
        self.window_seconds = window_seconds
        self._key_secret = key_secret.encode()

    def take(self, *, phone: str | None, client_id: int, now: datetime) -> Slot:
        """Count one attempt against the phone and the client; refuse when either is over its limit."""
        window = int(now.timestamp()) // self.window_seconds
        limits = [(self._client_key(client_id, window), self.per_client)]
        if phone:
            limits.append((self._phone_key(phone, window), self.per_phone))
        pipe = self.redis.pipeline()
        for key, _limit in limits:
            pipe.incr(key)
            pipe.expire(key, self.window_seconds + 60)
        counts = pipe.execute()[0::2]
        keys = tuple(key for key, _limit in limits)
        if any(count > limit for count, (_key, limit) in zip(counts, limits, strict=True)):
            retry_after = (window + 1) * self.window_seconds - int(now.timestamp())
            return Slot(False, keys, retry_after)
        return Slot(True, keys)

    def give_back(self, slot: Slot) -> None:
        """Return the slot of an attempt that turned out to be correct."""
        pipe = self.redis.pipeline()
        for key in slot.keys:
            pipe.decr(key)
        pipe.execute()

    def clear_client(self, client_id: int, now: datetime, *, phones: Iterable[str] = ()) -> None:
        """Forget the client's window and their phones' (an officer unlocked or reset the account, with the client in
        front of them: the phone's count would otherwise keep refusing the right PIN until the window ends)."""
        window = int(now.timestamp()) // self.window_seconds
        keys = [self._client_key(client_id, window), *(self._phone_key(phone, window) for phone in phones)]
        self.redis.delete(*keys)

    def _client_key(self, client_id: int, window: int) -> str:
        return f"{KEY_PREFIX}:client:{client_id}:{window}"

    def _phone_key(self, phone: str, window: int) -> str:
        digest = hmac.new(self._key_secret, phone.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{KEY_PREFIX}:phone:{digest}:{window}"


def build_limiter(services: Services) -> AttemptLimiter:
    """The limiter on the process's Redis, with phone keys HMAC-ed under the app secret."""
    return AttemptLimiter(services.redis, key_secret=services.settings.secret_key)
