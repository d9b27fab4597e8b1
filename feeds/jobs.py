"""RQ jobs for the feed: deliver one delivery, build and push a new feed, the daily run, catch up the facts.

Jobs are edges: they get the process's services from `bootstrap.current()`, open their own transactions and read
the clock. Each job function also has a `*_with(services, ...)` twin that the CLI and tests call directly.
With a real Redis a failed delivery re-schedules itself with `enqueue_in`; on the embedded inline queue there is no
scheduler, so the failure only records `next_attempt_at` and `feed push` or the daily run retries due deliveries.
"""

from __future__ import annotations

import logging
from datetime import datetime

import httpx

import bootstrap
from bootstrap import Services
from db import utcnow
from feeds import delivery, document, stale, sums
from feeds.delivery import Outcome

logger = logging.getLogger(__name__)


def deliver(delivery_id: int, now: datetime | None = None) -> str:
    """RQ job: send one delivery if it is pending and due; returns the outcome status."""
    return deliver_with(bootstrap.current(), delivery_id, now=now or utcnow()).status


def push(now: datetime | None = None) -> int:
    """RQ job: build the feed now, queue it as a new delivery and send it; returns the delivery id."""
    return push_with(bootstrap.current(), now=now or utcnow())[0]


def catch_up_facts() -> int:
    """RQ job, scheduled after survey changes: recompute the facts of the clients marked stale, then the sums of the
    profiles that changed (`feeds/sums.py`), so readers seldom have either to do; returns how many clients."""
    with bootstrap.current().transaction() as session:
        refreshed = stale.catch_up(session)
        sums.current(session)
        return refreshed


def daily() -> None:
    """RQ job, scheduled for 02:00 UTC: push a fresh feed, retry due deliveries, schedule tomorrow's run."""
    from feeds import schedule

    services = bootstrap.current()
    now = utcnow()
    try:
        if services.settings.portal_url:
            push_with(services, now=now)
        else:
            logger.warning("daily feed skipped: PORTAL_URL is not set")
        retry_due(services, now=now)
    finally:
        schedule.ensure_daily(services, now=now)


def deliver_with(
    services: Services, delivery_id: int, *, now: datetime, transport: httpx.BaseTransport | None = None
) -> Outcome:
    """Claim, send and record one attempt; on failure schedule the next one (real Redis) or leave it due later."""
    with services.transaction() as session:
        claim = delivery.claim(session, delivery_id, now=now)
    if claim is None:
        return Outcome(delivery_id, "skipped")
    settings = services.settings
    error = delivery.post(claim, url=settings.portal_url, secret=settings.portal_secret, now=now, transport=transport)
    with services.transaction() as session:
        outcome = delivery.record(session, claim, error, now=now, max_attempts=settings.feed_max_attempts)
    _log(outcome, claim.attempt)
    if outcome.retry_in is not None and not services.jobs_inline:
        services.queue.enqueue_in(outcome.retry_in, deliver, delivery_id)
    return outcome


def push_with(services: Services, *, now: datetime) -> tuple[int, Outcome]:
    """Build the feed, store it as a delivery (one transaction), then deliver it."""
    with services.transaction() as session:
        body = document.build_body(session, settings=services.settings, now=now)
        delivery_id = delivery.create(session, body, now=now).id
    return delivery_id, deliver_with(services, delivery_id, now=now)


def retry_due(services: Services, *, now: datetime) -> list[Outcome]:
    """Attempt every pending delivery whose next attempt is due."""
    with services.transaction() as session:
        due = delivery.due_ids(session, now=now)
    return [deliver_with(services, delivery_id, now=now) for delivery_id in due]


def _log(outcome: Outcome, attempt: int) -> None:
    if outcome.status == delivery.DELIVERED:
        logger.info("feed delivery %s delivered on attempt %s", outcome.delivery_id, attempt)
    elif outcome.status == delivery.DEAD:
        logger.error("feed delivery %s dead after %s attempts: %s", outcome.delivery_id, attempt, outcome.error)
    else:
        logger.warning(
            "feed delivery %s attempt %s failed (%s); retry in %s",
            outcome.delivery_id,
            attempt,
            outcome.error,
            outcome.retry_in,
        )
