"""Bearer-key authentication and the per-key rate limit, run before every `/api/v1` request except the document.

The rate limit is a fixed one-minute window per key in Redis (`INCR` + `EXPIRE`): simple, shared by every web
process, and cheap. A caller over the limit gets 429 with `Retry-After` set to the seconds left in the window.
If Redis is unreachable the limit is skipped (logged), so a cache outage does not take the API down with it.
"""

from __future__ import annotations

import logging
from datetime import datetime

import redis

from api import keys
from api.errors import ApiProblem
from bootstrap import Services

logger = logging.getLogger(__name__)

WINDOW_SECONDS = 60


def caller_for(services: Services, authorization: str | None, *, now: datetime) -> keys.Caller:
    """The authenticated caller for an `Authorization` header value; raises ApiProblem 401 or 429."""
    presented = _bearer_token(authorization)
    with services.transaction() as session:
        caller = keys.authenticate(session, presented, now=now)
    if caller is None:
        raise ApiProblem(401, "invalid API key", "the key is unknown, malformed or revoked")
    retry_after = _over_limit(services, caller.prefix, services.settings.rate_limit_per_key_per_minute, now)
    if retry_after is not None:
        raise ApiProblem(429, "rate limit exceeded", f"retry in {retry_after} s", headers={"Retry-After": retry_after})
    return caller


def _bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise ApiProblem(401, "missing API key", "send the header 'Authorization: Bearer ick_...'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiProblem(401, "missing API key", "send the header 'Authorization: Bearer ick_...'")
    return token.strip()


def _over_limit(services: Services, prefix: str, limit: int, now: datetime) -> int | None:
    """Seconds until the window ends when this request is over `limit`, else None."""
    epoch = int(now.timestamp())
    window_key = f"ic:api-rate:{prefix}:{epoch // WINDOW_SECONDS}"
    try:
        pipeline = services.redis.pipeline()
        pipeline.incr(window_key)
        pipeline.expire(window_key, WINDOW_SECONDS * 2)
        count, _ = pipeline.execute()
    except redis.exceptions.RedisError as exc:
        logger.warning("API rate limit skipped for key %s: redis unavailable (%s)", prefix, type(exc).__name__)
        return None
    if int(count) <= limit:
        return None
    return WINDOW_SECONDS - epoch % WINDOW_SECONDS
