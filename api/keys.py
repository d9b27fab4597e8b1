"""API keys: created once, shown once, stored hashed, found by their public prefix, revoked for good.

A key reads `ick_<prefix>_<secret>`. The prefix is public (it appears in `apikeys list` and in logs) and finds the
row; only the SHA-256 of the secret is stored, and it is compared in constant time. A leaked database therefore
holds no usable key. The secret has 256 bits of entropy, so a fast hash is enough (no password stretching needed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.models import Fund, Office
from api.models import ApiKey
from consent.service import lender_code
from db import as_utc

SCOPES = ("admin", "portal", "lender")
KEY_PATTERN = re.compile(r"^ick_([a-z0-9]{8})_([A-Za-z0-9_-]{43})$")
TOUCH_INTERVAL = timedelta(minutes=1)


class ApiKeyError(ValueError):
    """A key cannot be created as asked (unknown scope, fund or office)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: a key's permissions, detached from the database session."""

    key_id: int
    prefix: str
    scope: str
    lender: str | None
    funds: tuple[str, ...]
    offices: tuple[str, ...]

    @property
    def is_lender(self) -> bool:
        return self.scope == "lender"


def create_key(
    session: Session,
    *,
    scope: str,
    name: str | None = None,
    lender: str | None = None,
    funds: list[str] | None = None,
    offices: list[str] | None = None,
    now: datetime,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with its plaintext, which is never available again."""
    _check_scope(session, scope=scope, lender=lender, funds=funds or [], offices=offices or [])
    prefix = _unused_prefix(session)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(
        prefix=prefix,
        key_hash=hash_secret(secret),
        name=name or f"{scope} key {prefix}",
        scope=scope,
        lender=lender_code(lender),
        funds=funds or None,
        offices=offices or None,
        created_at=now,
    )
    session.add(key)
    session.flush()
    return key, f"ick_{prefix}_{secret}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_scope(session: Session, *, scope: str, lender: str | None, funds: list[str], offices: list[str]) -> None:
    if scope not in SCOPES:
        raise ApiKeyError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    if scope != "lender" and (lender or funds or offices):
        raise ApiKeyError("--lender, --funds and --offices only apply to lender keys")
    unknown_funds = set(funds) - set(session.scalars(select(Fund.external_id).where(Fund.external_id.in_(funds))))
    if unknown_funds:
        raise ApiKeyError(f"unknown fund(s): {', '.join(sorted(unknown_funds))}")
    known_offices = set(session.scalars(select(Office.external_id).where(Office.external_id.in_(offices))))
    unknown_offices = set(offices) - known_offices
    if unknown_offices:
        raise ApiKeyError(f"unknown office(s): {', '.join(sorted(unknown_offices))}")


def _unused_prefix(session: Session) -> str:
    while True:
        prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(8))
        if session.scalar(select(ApiKey.id).where(ApiKey.prefix == prefix)) is None:
            return prefix


def authenticate(session: Session, presented: str, *, now: datetime) -> Caller | None:
    """The caller for a presented key, or None when it is malformed, unknown or revoked; notes the use."""
    match = KEY_PATTERN.match(presented)
    if match is None:
        return None
    prefix, secret = match.groups()
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.key_hash, hash_secret(secret)):
        return None
    _touch(key, now)
    return Caller(key.id, key.prefix, key.scope, key.lender, tuple(key.funds or ()), tuple(key.offices or ()))


def _touch(key: ApiKey, now: datetime) -> None:
    # At most one write a minute per key: busy integrations should not turn every read into a write.
    last = as_utc(key.last_used_at) if key.last_used_at is not None else None
    if last is None or now - last >= TOUCH_INTERVAL:
        key.last_used_at = now


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_key(session: Session, prefix: str, *, now: datetime) -> bool:
    """Revoke the key with `prefix`; False when there is no such key (revoking twice is harmless)."""
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None:
        return False
    if key.revoked_at is None:
        key.revoked_at = now
    return True
