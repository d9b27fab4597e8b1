"""Every outgoing message is an outbox row first, then an RQ job sends it.

The row is written in the same transaction as the conversation step that produced it, and the job is enqueued
only after that transaction commits, so a worker never looks for a row that is not there yet and a rolled-back
step sends nothing. The idempotency key is unique: queueing the same reply twice stores it once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rq import Retry
from sqlalchemy import event, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bootstrap import Services
from gateway.encoding import normalise_for_sms, segment_count
from gateway.messages import Choice, Reply
from gateway.models import OutboxMessage

SEND_RETRY = Retry(max=6, interval=[10, 30, 60, 300, 900, 3600])  # back-off for timeouts, 429 and 5xx
CONFIGURED_BY = {
    "at-sms": ("at_username", "at_api_key"),
    "twilio-sms": ("twilio_account_sid", "twilio_auth_token"),
    "telegram": ("telegram_bot_token",),
}
SMS_CHANNELS = {"at-sms", "twilio-sms", "console"}


def reply_channel(services: Services, inbound_channel: str) -> str:
    """Answer on the channel the message came in on when it can send; otherwise on the configured outbound one
    (the console on the embedded default, so nothing leaves the machine)."""
    needed = CONFIGURED_BY.get(inbound_channel)
    if needed and all(getattr(services.settings, name) for name in needed):
        return inbound_channel
    return services.settings.outbound_channel


def queue_replies(
    session: Session, services: Services, *, channel: str, recipient: str, replies: Sequence[Reply], key_prefix: str
) -> list[int]:
    return [
        queue_message(
            session,
            services,
            channel=channel,
            recipient=recipient,
            text=reply.text,
            idempotency_key=f"{key_prefix}:{index}",
            choices=reply.choices,
            request_contact=reply.request_contact,
        )
        for index, reply in enumerate(replies)
    ]


def queue_message(
    session: Session,
    services: Services,
    *,
    channel: str,
    recipient: str,
    text: str,
    idempotency_key: str,
    choices: Sequence[Choice] = (),
    request_contact: bool = False,
) -> int:
    """Store the message (once per idempotency key) and enqueue its sending after the transaction commits."""
    if channel in SMS_CHANNELS:
        text = normalise_for_sms(text)
    values = {
        "idempotency_key": idempotency_key,
        "channel": channel,
        "recipient": recipient,
        "text": text,
        "choices": [[choice.key, choice.label] for choice in choices] or None,
        "request_contact": request_contact,
        "status": "queued",
        "segments": segment_count(text) if channel in SMS_CHANNELS else 1,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(OutboxMessage).values(**values).on_conflict_do_nothing(index_elements=["idempotency_key"]))
    message_id = session.scalar(select(OutboxMessage.id).where(OutboxMessage.idempotency_key == idempotency_key))
    assert message_id is not None
    _enqueue_after_commit(session, services, message_id)
    return message_id


def _enqueue_after_commit(session: Session, services: Services, message_id: int) -> None:
    pending: list[int] = session.info.setdefault("outbox_after_commit", [])
    if not pending:
        event.listen(session, "after_commit", lambda s: _flush(s, services), once=True)
        event.listen(session, "after_rollback", lambda s: s.info.pop("outbox_after_commit", None), once=True)
    pending.append(message_id)


def _flush(session: Session, services: Services) -> None:
    from gateway.jobs import send_outbound

    for message_id in session.info.pop("outbox_after_commit", []):
        enqueue_send(services, message_id, send_outbound)


def enqueue_send(services: Services, message_id: int, job: Callable[[int], object]) -> None:
    services.enqueue(job, message_id, job_id=send_job_id(message_id), retry=SEND_RETRY)


def send_job_id(message_id: int) -> str:
    """The RQ job id of a row's send: one job per row, whatever enqueues it."""
    return f"outbox-{message_id}"
