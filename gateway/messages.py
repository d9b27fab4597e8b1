"""Plain message types shared by channel adapters, the conversation engine and the outbox.

They are frozen dataclasses with no behaviour so every layer (pure engine, Flask views, RQ jobs)
can pass them around without importing each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol


@dataclass(frozen=True)
class Choice:
    """One selectable option on a screen: what the user types (`key`) and what they see (`label`)."""

    key: str
    label: str


@dataclass(frozen=True)
class Reply:
    """One screen or message for the user. `final` ends a USSD session; `choices` become Telegram buttons."""

    text: str
    final: bool = False
    choices: tuple[Choice, ...] = ()
    request_contact: bool = False  # Telegram: offer a "share my phone number" button


@dataclass(frozen=True)
class Inbound:
    """A normalized incoming message, whatever provider it came from."""

    channel: str  # stable channel slug: at-ussd, at-sms, twilio-sms, telegram, console
    sender: str  # E.164 phone number, or "tg:<chat id>" for Telegram chats not yet linked
    text: str
    session_id: str  # provider session (USSD) or a stable per-sender key (SMS, Telegram)
    provider_message_id: str | None = None
    received_at: datetime | None = None
    contact_phone: str | None = None  # Telegram: phone number the user shared with the contact button
    callback_id: str | None = None  # Telegram: callback query to answer


@dataclass(frozen=True)
class Outbound:
    """A message to send asynchronously through a channel's `send()`."""

    channel: str
    recipient: str
    text: str
    idempotency_key: str
    choices: tuple[Choice, ...] = ()
    request_contact: bool = False


class DeliveryState(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery report from a provider, mapped to our vocabulary."""

    channel: str
    provider_message_id: str
    state: DeliveryState
    reason: str | None = None


@dataclass(frozen=True)
class SessionEnd:
    """A provider's notice that a USSD session is over (Africa's Talking's end-of-session callback): the session's
    live state can go, and its outcome is worth a log line. Never the session's input: it holds any PIN typed."""

    channel: str
    session_id: str
    phone: str | None
    status: str  # the provider's word, e.g. Success, Failed
    hops: int | None = None
    duration_ms: int | None = None
    error: str | None = None


class HeaderPairs(Protocol):
    """The request's headers as name/value pairs: a dict, or werkzeug's `Headers` (passed as it is)."""

    def items(self) -> Iterable[tuple[str, str]]: ...


@dataclass(frozen=True)
class WebhookRequest:
    """What an adapter needs from an HTTP request, without Flask. The full URL is given (`url`) or built when an
    adapter asks for it (`url_of`): only Twilio's signature needs it, and building it costs a USSD hop."""

    headers: HeaderPairs
    form: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    url: str | None = None
    url_of: Callable[[], str] | None = None

    def full_url(self) -> str:
        if self.url is not None:
            return self.url
        return self.url_of() if self.url_of is not None else ""


@dataclass(frozen=True)
class WebhookResponse:
    body: str = ""
    status: int = 200
    content_type: str = "text/plain; charset=utf-8"
