"""RQ jobs of the gateway: sending one outbox message through its channel's `send()`, and answering a pressed
Telegram button (`answer_button`), so that no web request waits on a provider's API.

Idempotent: the row is claimed with a conditional UPDATE (queued -> sending), so a job that runs twice, or two
workers racing, send once. Retryable failures (timeouts, 429, 5xx) put the row back to queued and re-raise so RQ's
`Retry` back-off applies; permanent ones mark it failed with the provider's reason. A row left in `sending` (the
worker died mid-send) is not sent again automatically: whether the provider got it is unknown, so it is marked
`unknown` for an operator, because sending twice is worse for a client than a missing reminder.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime, timedelta
from typing import Any

import redis
from sqlalchemy import select, update

import bootstrap
from db import utcnow
from gateway.channels import SendError
from gateway.messages import Choice, DeliveryState, Outbound, StatusUpdate
from gateway.models import OutboxMessage
from gateway.outbox import SEND_RETRY, enqueue_send, send_job_id
from logs import mask_phone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = SEND_RETRY.max + 1  # the first send and RQ's retries
FINAL_STATES = (DeliveryState.DELIVERED.value, DeliveryState.FAILED.value)


def send_outbound(message_id: int) -> str:
    """Send outbox row `message_id`; returns its final status."""
    services = bootstrap.current()
    with services.transaction() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            return "missing"
        if message.status != "queued":
            if message.status == "sending":
                return _abandoned_or_in_progress(session, message, services.settings.send_timeout_seconds)
            return message.status
        attempt = (message.attempts or 0) + 1  # read before the claim, which counts it
        claimed = _rows_changed(
            session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id == message_id, OutboxMessage.status == "queued")
                .values(status="sending", attempts=OutboxMessage.attempts + 1, updated_at=utcnow())
            )
        )
        outbound = Outbound(
            channel=message.channel,
            recipient=message.recipient,
            text=message.text,
            idempotency_key=message.idempotency_key,
            choices=tuple(Choice(key, label) for key, label in message.choices or ()),
            request_contact=message.request_contact,
        )
    if not claimed:
        return "claimed elsewhere"
    try:
        _respect_rate_limit(services, outbound.channel)
    except redis.exceptions.RedisError:  # nothing was sent yet: give the row back for RQ's next attempt
        _set_status(services, message_id, "queued", "send rate limiter unavailable (Redis)")
        raise
    try:
        provider_id = services.channels[outbound.channel].send(outbound)
    except SendError as exc:
        return _record_failure(services, message_id, exc, last_attempt=attempt >= MAX_ATTEMPTS)
    with services.transaction() as session:
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id)
            .values(status="sent", provider_message_id=provider_id, sent_at=utcnow(), error=None)
        )
    logger.info("sent outbox %s on %s to %s", message_id, outbound.channel, mask_phone(outbound.recipient))
    return "sent"


def answer_button(channel_slug: str, callback_id: str) -> None:
    """Stop the spinner on a pressed button (Telegram shows it until the callback query is answered). Not retried: a
    late answer is no use, and the spinner stops by itself; the message itself was handled when it came in."""
    channel = bootstrap.current().channels[channel_slug]
    try:
        channel.answer_callback(callback_id)
    except Exception as exc:  # noqa: BLE001 - a missed acknowledgement must not fail the queue
        logger.info("could not answer callback query: %s", type(exc).__name__)


def _abandoned_or_in_progress(session: Any, message: OutboxMessage, send_timeout_seconds: float) -> str:
    """A row still `sending` is either being sent by another job right now, or was left by a worker that died
    mid-send. Only a claim older than twice the send timeout is the latter: mark it `unknown`, never resend."""
    stale_before = utcnow() - timedelta(seconds=2 * send_timeout_seconds)
    marked = _rows_changed(
        session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message.id,
                OutboxMessage.status == "sending",
                OutboxMessage.updated_at < stale_before,
            )
            .values(status="unknown", error="worker stopped while sending; not resent to avoid a duplicate")
            # The database decides: SQLite hands back naive times, which Python cannot compare with an aware one.
            .execution_options(synchronize_session=False)
        )
    )
    return "unknown" if marked else "in progress"


def _record_failure(services: bootstrap.Services, message_id: int, error: SendError, *, last_attempt: bool) -> str:
    """A retryable failure goes back to queued for RQ's next attempt, unless the attempts are used up: then, like a
    permanent one, the row is failed with the provider's reason (it would otherwise stay queued with no job left)."""
    if error.maybe_sent:  # the provider may have it: an operator checks, nobody resends
        _set_status(services, message_id, "unknown", f"{error.message}; not resent to avoid a duplicate")
        logger.warning("outbox %s may or may not have been sent: %s", message_id, error.message)
        return "unknown"
    retry = error.retryable and not last_attempt
    _set_status(services, message_id, "queued" if retry else "failed", error.message)
    if retry:
        raise error  # RQ's Retry schedules the next attempt
    logger.warning(
        "outbox %s failed for good after %s: %s",
        message_id,
        "its last attempt" if error.retryable else "a permanent error",
        error.message,
    )
    return "failed"


def _set_status(services: bootstrap.Services, message_id: int, status: str, error: str) -> None:
    with services.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(status=status, error=error[:500])
        )


def _respect_rate_limit(services: bootstrap.Services, channel: str) -> None:
    """At most `sms_per_second` messages per second per provider account, shared by every worker, never more: a
    rate below one is a window of several seconds with one message (0.5/s: one every 2 s)."""
    seconds, limit = send_window(services.settings.sms_per_second)
    while True:
        window = int(time.time()) // seconds
        key = f"rate:send:{channel}:{seconds}:{window}"
        count = services.redis.incr(key)
        if count == 1:
            services.redis.expire(key, seconds + 5)
        if int(count) <= limit:
            return
        time.sleep(max(0.0, (window + 1) * seconds - time.time()))


def send_window(per_second: float) -> tuple[int, int]:
    """(window in seconds, messages in it), never above `per_second`: 10 -> (1, 10), 2.5 -> (1, 2), 0.5 -> (2, 1)."""
    seconds = max(1, math.ceil(1 / per_second)) if per_second > 0 else 1
    return seconds, max(1, math.floor(per_second * seconds))


def apply_status(services: bootstrap.Services, updates: list[StatusUpdate]) -> int:
    """Apply delivery reports to outbox rows; returns how many rows changed."""
    changed = 0
    with services.transaction() as session:
        for status in updates:
            values: dict[str, object] = {"status": status.state.value}
            if status.state is DeliveryState.FAILED and status.reason:
                values["error"] = status.reason[:500]
            changed += _rows_changed(
                session.execute(
                    update(OutboxMessage)
                    .where(
                        OutboxMessage.channel == status.channel,
                        OutboxMessage.provider_message_id == status.provider_message_id,
                        OutboxMessage.status.not_in(FINAL_STATES),  # a late report never undoes a final one
                    )
                    .values(**values)
                )
            )
    return changed


def _rows_changed(result: Any) -> int:
    """Rows an UPDATE matched (`CursorResult.rowcount`; `Session.execute` is typed as the plain `Result`)."""
    return int(result.rowcount)


STRANDED_AFTER = timedelta(minutes=2)
SWEEP_EVERY = timedelta(minutes=1)


def requeue_stranded(services: bootstrap.Services, *, now: datetime | None = None) -> int:
    """Enqueue again every outbox row left `queued` with no job behind it (Redis failed between the commit of the
    reply and the enqueue of its send, so the provider's retry of the webhook was dropped as already seen); returns
    how many. A row waiting for RQ's next retry has its job and is left alone."""
    cutoff = (now or utcnow()) - STRANDED_AFTER
    with services.transaction() as session:
        queued = session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.status == "queued", OutboxMessage.updated_at < cutoff)
        ).all()
    stranded = [message_id for message_id in queued if not services.has_job(send_job_id(message_id))]
    for message_id in stranded:
        enqueue_send(services, message_id, send_outbound)
    if stranded:
        logger.warning("re-enqueued %s outbox messages left without a send job", len(stranded))
    return len(stranded)


def sweep(services: bootstrap.Services | None = None) -> int:
    """The recurring job: requeue stranded rows, then schedule the next sweep (one job id per minute, so a second
    worker starting does not double it)."""
    services = services or bootstrap.current()
    requeued = requeue_stranded(services)
    schedule_sweep(services)
    return requeued


def schedule_sweep(services: bootstrap.Services, *, now: datetime | None = None) -> None:
    """Schedule the next sweep unless it is already scheduled (a no-op when jobs run inline: nothing strands)."""
    if services.jobs_inline:
        return
    when = (now or utcnow()) + SWEEP_EVERY
    services.schedule_once(when, sweep, job_id=f"ic-outbox-sweep-{when:%Y%m%d%H%M}")
