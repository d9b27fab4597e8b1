"""Bearer-key authentication and the rate limits, run before every `/api/v1` request except the document.

Both limits are fixed one-minute windows in Redis (`INCR` + `EXPIRE`): simple, shared by every web process, and
cheap. One counts the requests of each key; the other counts the failed keys (unknown, malformed, revoked) that one
client address presents, so a script trying keys gets 429 before each try costs a database read, and a leaked but
revoked key cannot be replayed at full speed. The address is hashed with the app secret before it becomes a Redis
key. A caller over a limit gets 429 with `Retry-After` set to the seconds left in the window. If Redis is
unreachable the limits are skipped (logged), so a cache outage does not take the API down with it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime

import redis

from api import keys
from api.errors import ApiProblem
from bootstrap import Services

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


class TooManyBadKeys(Exception):
    """The address presented too many failed keys this minute; `retry_after` seconds until the window ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry in {retry_after} s")
        self.retry_after = retry_after


def caller_for(services: Services, authorization: str | None, *, now: datetime, address: str | None) -> keys.Caller:
    """The authenticated caller for an `Authorization` header value sent from `address` (the client's IP);
    raises ApiProblem 401 or 429."""
    presented = _bearer_token(authorization)
    try:
        caller = authenticate_limited(services, presented, now=now, address=address)
    except TooManyBadKeys as exc:
        raise _too_many("too many invalid API keys from this address", exc.retry_after) from None
    if caller is None:
        raise ApiProblem(401, "invalid API key", "the key is unknown, malformed or revoked")
    requests = _count(services, f"ic:api-rate:{caller.prefix}:{_window(now)}", add=1)
    if requests > services.settings.rate_limit_per_key_per_minute:
        raise _too_many("rate limit exceeded", _retry_after(now))
    return caller


def authenticate_limited(
    services: Services, presented: str, *, now: datetime, address: str | None
) -> keys.Caller | None:
    """`keys.authenticate` behind the limit on failed keys per client address (the API and the /impact sign-in);
    raises TooManyBadKeys before reading the database when the address is over it."""
    failures_key = _failures_key(services, address, now)
    if _count(services, failures_key, add=0) >= services.settings.bad_api_keys_per_address_per_minute:
        raise TooManyBadKeys(_retry_after(now))
    with services.transaction() as session:
        caller = keys.authenticate(session, presented, now=now)
    if caller is None:
        _count(services, failures_key, add=1)
    return caller


def _retry_after(now: datetime) -> int:
    return WINDOW_SECONDS - int(now.timestamp()) % WINDOW_SECONDS


def _too_many(title: str, retry_after: int) -> ApiProblem:
    return ApiProblem(429, title, f"retry in {retry_after} s", headers={"Retry-After": retry_after})


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise ApiProblem(401, "missing API key", "send the header 'Authorization: Bearer ick_...'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "missing API key", "send the header 'Authorization: Bearer ick_...'")
    return token.strip()


def _window(now: datetime) -> int:
    return int(now.timestamp()) // WINDOW_SECONDS


def _failures_key(services: Services, address: str | None, now: datetime) -> str:
    digest = hmac.new(services.settings.secret_key.encode(), (address or "-").encode(), hashlib.sha256).hexdigest()
    return f"ic:api-bad-keys:{digest[:24]}:{_window(now)}"


def _count(services: Services, window_key: str, *, add: int) -> int:
    """The window's count after adding `add` (0: just read it); 0 when Redis is unreachable."""
    try:
        if not add:
            return int(services.redis.get(window_key) or 0)
        pipeline = services.redis.pipeline()
        pipeline.incrby(window_key, add)
        pipeline.expire(window_key, WINDOW_SECONDS * 2)
        count, _ = pipeline.execute()
    except redis.exceptions.RedisError as exc:
        logger.warning("API rate limit skipped: redis unavailable (%s)", type(exc).__name__)
        return 0
    return int(count)
