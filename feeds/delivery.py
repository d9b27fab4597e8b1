"""The outbox of feed deliveries: create, claim, record the outcome, replay.

A delivery is sent by whoever *claims* it first: a conditional UPDATE that only succeeds while the row is pending
and due, and that moves `next_attempt_at` forward by a lease. A second job running the same delivery at the same
time (or after it was delivered) claims nothing and sends nothing. The outcome is written with another
conditional UPDATE that checks the attempt number, so a late answer cannot overwrite a newer one.

Failures back off exponentially from one minute up to a day; after `max_attempts` the delivery is dead-lettered.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from feeds import signing
from feeds.document import FEED_VERSION
from feeds.models import FeedDelivery

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
FIRST_BACKOFF = timedelta(minutes=1)
MAX_BACKOFF = timedelta(hours=24)
LEASE = timedelta(minutes=5)  # longer than one POST can take; a crashed sender's claim expires after it
POST_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int
    idempotency_key: str
    body: str


@dataclass(frozen=True)
class Outcome:
    delivery_id: int
    status: str  # delivered | pending (will retry) | dead | skipped (not claimed: done, not due or in flight)
    retry_in: timedelta | None = None
    error: str | None = None


def create(session: Session, body: str, *, now: datetime) -> FeedDelivery:
    """Queue a new delivery of `body` (canonical JSON) with a fresh idempotency key."""
    delivery = FeedDelivery(
        idempotency_key=f"feed-{uuid.uuid4().hex}",
        feed_version=FEED_VERSION,
        body=body,
        status=PENDING,
        attempts=0,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


def claim(session: Session, delivery_id: int, *, now: datetime) -> Claim | None:
    """Take the next attempt of a pending, due delivery; None when it is delivered, dead, not due or in flight."""
    result = session.execute(
        update(FeedDelivery)
        .where(FeedDelivery.id == delivery_id, FeedDelivery.status == PENDING, _is_due(now))
        .values(attempts=FeedDelivery.attempts + 1, next_attempt_at=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.execute(
        select(FeedDelivery.attempts, FeedDelivery.idempotency_key, FeedDelivery.body).where(
            FeedDelivery.id == delivery_id
        )
    ).one()
    return Claim(delivery_id, row.attempts, row.idempotency_key, row.body)


def post(
    claim: Claim, *, url: str, secret: str, now: datetime, transport: httpx.BaseTransport | None = None
) -> str | None:
    """POST the claimed body, signed; None on a 2xx, else a short reason (never the body)."""
    if not url:
        return "PORTAL_URL is not set"
    body = claim.body.encode()
    headers = signing.signed_headers(body, secret, now=now, idempotency_key=claim.idempotency_key)
    try:
        with httpx.Client(timeout=POST_TIMEOUT_SECONDS, transport=transport) as http:
            response = http.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"[:200]
    if response.is_success:
        return None
    return f"HTTP {response.status_code}"


def record(session: Session, claim: Claim, error: str | None, *, now: datetime, max_attempts: int) -> Outcome:
    """Write the outcome of `claim`'s attempt: delivered, retry later with back-off, or dead-lettered."""
    mine = (
        FeedDelivery.id == claim.delivery_id,
        FeedDelivery.status == PENDING,
        FeedDelivery.attempts == claim.attempt,
    )
    if error is None:
        values: dict[str, object] = {"status": DELIVERED, "delivered_at": now, "next_attempt_at": None}
        outcome = Outcome(claim.delivery_id, DELIVERED)
    elif claim.attempt >= max_attempts:
        values = {"status": DEAD, "last_error": error, "next_attempt_at": None}
        outcome = Outcome(claim.delivery_id, DEAD, error=error)
    else:
        delay = backoff(claim.attempt)
        values = {"last_error": error, "next_attempt_at": now + delay}
        outcome = Outcome(claim.delivery_id, PENDING, retry_in=delay, error=error)
    session.execute(update(FeedDelivery).where(*mine).values(**values).execution_options(synchronize_session=False))
    return outcome


def backoff(attempts: int) -> timedelta:
    """Wait after the `attempts`-th failure: 1, 2, 4, 8 ... minutes, at most 24 hours."""
    delay: timedelta = FIRST_BACKOFF * 2 ** max(attempts - 1, 0)
    return min(delay, MAX_BACKOFF)


def due_ids(session: Session, *, now: datetime) -> list[int]:
    """Pending deliveries whose next attempt is due (the inline-mode retry path and the daily run use this)."""
    query = select(FeedDelivery.id).where(FeedDelivery.status == PENDING, _is_due(now)).order_by(FeedDelivery.id)
    return list(session.scalars(query))


def replay(session: Session, delivery_id: int) -> FeedDelivery | None:
    """Make a delivered or dead delivery pending again, with a fresh attempt budget and the SAME idempotency key."""
    delivery = session.get(FeedDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return None
    if delivery.status == PENDING:
        raise ValueError(f"delivery {delivery_id} is still pending; it will be retried on its own")
    delivery.status = PENDING
    delivery.attempts = 0
    delivery.next_attempt_at = None
    session.flush()
    return delivery


def recent(session: Session, limit: int = 20) -> list[FeedDelivery]:
    return list(session.scalars(select(FeedDelivery).order_by(FeedDelivery.id.desc()).limit(limit)))


def _is_due(now: datetime) -> ColumnElement[bool]:
    return or_(FeedDelivery.next_attempt_at.is_(None), FeedDelivery.next_attempt_at <= now)
