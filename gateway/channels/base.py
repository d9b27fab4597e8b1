"""The contract every channel adapter meets, the errors adapters raise, and helpers they share.

An adapter turns a provider's webhook into `Inbound` messages and our replies into the provider's response
(`parse`/`respond`), and sends queued messages (`send`). The Flask views map `BadRequest` to 400 and
`Forbidden` to 403; the outbox job retries a `SendError` only when it is `retryable`.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import ClassVar, Protocol, runtime_checkable

from accounts.phones import normalise_phone
from gateway.messages import Inbound, Outbound, Reply, StatusUpdate, WebhookRequest, WebhookResponse
from logs import mask_phone as mask_phone  # re-exported for the adapters' log lines


class BadRequest(Exception):
    """The webhook request is malformed (missing or invalid field). Answer 400."""


class Forbidden(Exception):
    """The webhook request is not authentic (bad signature or token). Answer 403."""


class SendError(Exception):
    """Sending failed. `retryable` tells the outbox whether trying again later can succeed; `maybe_sent` that the
    request reached the provider and no answer came back (a read timeout): the message may be on its way, so it is
    never sent again (twice is worse for a client than once missing)."""

    def __init__(self, message: str, retryable: bool, *, maybe_sent: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable and not maybe_sent
        self.maybe_sent = maybe_sent

    def __repr__(self) -> str:
        return f"SendError({self.message!r}, retryable={self.retryable}, maybe_sent={self.maybe_sent})"


def transport_error(slug: str, exc: Exception) -> SendError:
    """A `requests` failure of an SDK call: one before the request left (no connection, connect timeout) can be
    retried; a read timeout cannot, the provider may have taken the message."""
    import requests

    connected = isinstance(exc, requests.ReadTimeout)
    return SendError(f"{slug}: {type(exc).__name__}", retryable=not connected, maybe_sent=connected)


@runtime_checkable
class Channel(Protocol):
    slug: ClassVar[str]
    synchronous: ClassVar[bool]  # True: replies go back in the webhook response (USSD)

    def verify(self, request: WebhookRequest) -> None: ...  # raises Forbidden

    def parse(self, request: WebhookRequest) -> list[Inbound]: ...  # raises BadRequest

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse: ...

    def send(self, message: Outbound) -> str | None: ...  # provider message id; raises SendError


class StatusChannel(Channel, Protocol):
    """A channel whose provider also posts delivery reports."""

    def parse_status(self, request: WebhookRequest) -> list[StatusUpdate]: ...  # raises BadRequest


NOT_CONFIGURED = "not configured"


def not_configured(slug: str) -> SendError:
    """The error `send()` raises when the provider's credentials are missing: retrying cannot help."""
    return SendError(f"{slug}: {NOT_CONFIGURED}", retryable=False)


def secrets_match(received: str | None, expected: str) -> bool:
    """Constant-time comparison of a received secret with the configured one."""
    return hmac.compare_digest((received or "").encode(), expected.encode())


def verify_query_token(request: WebhookRequest, expected_token: str) -> None:
    """Africa's Talking signs nothing, so its callback URLs carry `?token=`; check it when one is configured."""
    if expected_token and not secrets_match(request.query.get("token"), expected_token):
        raise Forbidden("invalid or missing token")


def require_fields(form: Mapping[str, str], *names: str) -> list[str]:
    """The values of `names` in `form`, or `BadRequest` naming the first missing one."""
    missing = [name for name in names if name not in form]
    if missing:
        raise BadRequest(f"missing field {missing[0]!r}")
    return [form[name] for name in names]


def e164(raw: str, field: str) -> str:
    """Normalise an international phone number to E.164, or `BadRequest` naming the field."""
    number = normalise_phone(raw)
    if number is None:
        raise BadRequest(f"field {field!r} is not a phone number")
    return number


def parse_provider_time(raw: str | None) -> datetime | None:
    """Parse a provider timestamp (ISO 8601 with `T` or a space, optional `Z`); naive times are UTC."""
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def sender_session(slug: str, sender: str) -> str:
    """The stable per-sender session key used by message channels (SMS, Telegram)."""
    return f"{slug}:{sender}"


def header(request: WebhookRequest, name: str) -> str | None:
    """A request header by case-insensitive name (HTTP header names are case-insensitive)."""
    wanted = name.lower()
    return next((value for key, value in request.headers.items() if key.lower() == wanted), None)
