"""Telegram bot: webhook updates in, messages with keyboards out, through python-telegram-bot (v22).

Telegram POSTs one JSON `Update` per request with our secret in `X-Telegram-Bot-Api-Secret-Token`
(channels.md §3.1). A text message:

    {"update_id": 912345678,
     "message": {"message_id": 41, "date": 1744623067, "text": "/start",
                 "chat": {"id": 5550001234, "type": "private", "first_name": "Amina"},
                 "from": {"id": 5550001234, "is_bot": false, "first_name": "Amina", "language_code": "sw"}}}

A button press arrives as `{"update_id": ..., "callback_query": {"id": "4382bfdwdsb323b2d9", "data": "2",
"from": {...}, "chat_instance": "...", "message": {... "chat": {"id": 5550001234, ...}}}}`, and a shared contact
as a message with `"contact": {"phone_number": "254711000111", "first_name": "Amina", "user_id": 5550001234}`.

Only private chats are handled. The sender is `tg:<chat id>` until the service links the chat to a client.
A contact's phone number is trusted only when `contact.user_id` is the sender's own id (a user can also
share somebody else's contact card). PTB is asyncio-only, so `send()` builds a new `Bot` per call inside
`asyncio.run` (never reuse a Bot across event loops). Callback queries must be answered
(`answer_callback`), or the user's client shows a spinner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any, ClassVar, TypeVar

import httpx
import telegram
import telegram.error as tg_error
from telegram.constants import MessageLimit
from telegram.request import HTTPXRequest

from gateway.channels.base import (
    BadRequest,
    Forbidden,
    SendError,
    e164,
    header,
    not_configured,
    secrets_match,
    sender_session,
)
from gateway.messages import Choice, Inbound, Outbound, Reply, WebhookRequest, WebhookResponse

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_BASE_URL = "https://api.telegram.org/bot"
MAX_CALLBACK_DATA_BYTES = 64  # Bot API limit; PTB does not check it
SENDER_PREFIX = "tg:"
CHAT_ID = re.compile(r"(?:tg:)?(-?\d+)")

T = TypeVar("T")


class Telegram:
    slug: ClassVar[str] = "telegram"
    synchronous: ClassVar[bool] = False

    def __init__(
        self,
        bot_token: str = "",
        webhook_secret: str = "",
        base_url: str = "",
        timeout_seconds: float = 10.0,
        contact_button_label: str = "Share my phone number",
    ) -> None:
        self._token = bot_token
        self._secret = webhook_secret
        self._base_url = base_url or DEFAULT_BASE_URL
        self._timeout = timeout_seconds
        self._contact_label = contact_button_label

    def verify(self, request: WebhookRequest) -> None:
        if not self._secret:
            raise Forbidden("telegram webhook secret not configured; refusing unauthenticated updates")
        if not secrets_match(header(request, SECRET_HEADER), self._secret):
            raise Forbidden(f"invalid {SECRET_HEADER}")

    def parse(self, request: WebhookRequest) -> list[Inbound]:
        update = _decode_update(request.body)
        if update.callback_query is not None:
            return self._parse_callback(update)
        message = update.message
        if message is not None and getattr(message, "chat", None) is None:
            raise BadRequest("message without a chat")
        if message is None or message.chat.type != telegram.constants.ChatType.PRIVATE:
            return []  # edits, channel posts, group chats, membership changes: nothing to answer
        sender = SENDER_PREFIX + str(message.chat.id)
        return [
            Inbound(
                channel=self.slug,
                sender=sender,
                text=message.text or "",
                session_id=sender_session(self.slug, sender),
                provider_message_id=str(update.update_id),
                received_at=message.date,
                contact_phone=_own_contact_phone(message),
            )
        ]

    def _parse_callback(self, update: telegram.Update) -> list[Inbound]:
        query = update.callback_query
        assert query is not None
        chat = getattr(query.message, "chat", None) if query.message is not None else None
        user = getattr(query, "from_user", None)
        if chat is not None:
            chat_id = chat.id
        elif user is not None:
            chat_id = user.id
        else:
            raise BadRequest("callback query without a chat or a sender")
        sender = SENDER_PREFIX + str(chat_id)
        return [
            Inbound(
                channel=self.slug,
                sender=sender,
                text=query.data or "",
                session_id=sender_session(self.slug, sender),
                provider_message_id=str(update.update_id),
                callback_id=query.id,
            )
        ]

    def respond(self, replies: Sequence[Reply]) -> WebhookResponse:
        return WebhookResponse(body="")  # replies go through the outbox

    def send(self, message: Outbound) -> str | None:
        """Send the text (in several messages when it is longer than Telegram takes in one; the keyboard goes with
        the last). If a later part fails, the retry sends every part again: an early part may arrive twice."""
        chat_id = _chat_id(message.recipient)
        markup = self._markup(message)
        parts = text_parts(message.text)

        async def send_messages(bot: telegram.Bot) -> str:
            for number, part in enumerate(parts, start=1):
                last = number == len(parts)
                sent = await bot.send_message(chat_id=chat_id, text=part, reply_markup=markup if last else None)
            return f"{chat_id}:{sent.message_id}"

        return self._run(send_messages)

    def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        """Stop the spinner on the button the user pressed (Telegram requires an answer to every query)."""

        async def answer(bot: telegram.Bot) -> None:
            await bot.answer_callback_query(callback_query_id=callback_id, text=text)

        self._run(answer)

    def _markup(self, message: Outbound) -> telegram.InlineKeyboardMarkup | telegram.ReplyKeyboardMarkup | None:
        if message.request_contact:  # one keyboard per message: the contact button wins, labelled by its choice
            label = message.choices[0].label if message.choices else self._contact_label
            button = telegram.KeyboardButton(label, request_contact=True)
            return telegram.ReplyKeyboardMarkup([[button]], one_time_keyboard=True, resize_keyboard=True)
        if message.choices:
            return telegram.InlineKeyboardMarkup([[_button(choice)] for choice in message.choices])
        return None

    def _run(self, call: Callable[[telegram.Bot], Awaitable[T]]) -> T:
        if not self._token:
            raise not_configured(self.slug)
        try:
            return asyncio.run(self._with_bot(call))
        except tg_error.TelegramError as exc:
            raise _send_error(exc) from exc

    async def _with_bot(self, call: Callable[[telegram.Bot], Awaitable[T]]) -> T:
        """A new Bot per call (each job runs its own event loop), sharing one SSL context per process: loading the
        CA bundle costs 20-40 ms, and PTB would otherwise build a second client for get_updates we never call."""
        timeout = self._timeout
        request = HTTPXRequest(
            connect_timeout=timeout,
            read_timeout=timeout,
            write_timeout=timeout,
            httpx_kwargs={"verify": _shared_ssl_context()},
        )
        bot = telegram.Bot(self._token, base_url=self._base_url, request=request, get_updates_request=request)
        try:
            return await call(bot)
        finally:
            await request.shutdown()


def text_parts(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """`text` cut into pieces Telegram accepts (at most `limit` UTF-16 code units each, as Telegram counts), each
    ending at a line break or else a space where there is one, so no word is split when it can be helped."""
    parts: list[str] = []
    while _utf16_length(text) > limit:
        head = text[:limit]
        while _utf16_length(head) > limit:  # characters outside the BMP count twice
            head = head[:-1]
        cut = head.rfind("\n")
        cut = cut if cut > 0 else head.rfind(" ")
        cut = cut if cut > 0 else len(head)
        parts.append(text[:cut].rstrip())
        text = text[cut:].lstrip()
    return [*parts, text]


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@cache
def _shared_ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context()


def _decode_update(body: bytes) -> telegram.Update:
    try:
        data: Any = json.loads(body)
        update = telegram.Update.de_json(data, None)
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError, OSError) as exc:
        # OverflowError and OSError: a `date` beyond what the platform's time_t holds (PTB's from_timestamp)
        raise BadRequest("body is not a Telegram Update") from exc
    if update is None:
        raise BadRequest("body is not a Telegram Update")
    return update


def _own_contact_phone(message: telegram.Message) -> str | None:
    contact = message.contact
    if contact is None or message.from_user is None or contact.user_id != message.from_user.id:
        return None
    try:
        return e164(contact.phone_number, "contact.phone_number")
    except BadRequest:
        log.warning("ignoring a shared contact whose number is not a phone number")
        return None


def _chat_id(recipient: str) -> int:
    """`tg:<chat id>` (or a bare chat id) to the numeric id; a phone number is not a chat."""
    match = CHAT_ID.fullmatch(recipient)
    if match is None:
        raise SendError("telegram: recipient is not a Telegram chat id", retryable=False)
    return int(match.group(1))


def _button(choice: Choice) -> telegram.InlineKeyboardButton:
    if not 1 <= len(choice.key.encode()) <= MAX_CALLBACK_DATA_BYTES:
        raise SendError(f"telegram: choice key must be 1-{MAX_CALLBACK_DATA_BYTES} bytes", retryable=False)
    return telegram.InlineKeyboardButton(choice.label, callback_data=choice.key)


def _send_error(exc: tg_error.TelegramError) -> SendError:
    """Flood control and network trouble pass; a bad request, a blocked bot or a bad token do not."""
    if isinstance(exc, tg_error.RetryAfter):
        return SendError(f"telegram: rate limited: {exc.message}", retryable=True)
    if isinstance(exc, tg_error.BadRequest):  # a NetworkError subclass, so test it first
        return SendError(f"telegram: bad request: {exc.message}", retryable=False)
    if isinstance(exc, tg_error.TimedOut) and not isinstance(exc.__cause__, (httpx.ConnectTimeout, httpx.PoolTimeout)):
        # The request left and no answer came: Telegram may have delivered it, so it is not sent again.
        return SendError(f"telegram: {type(exc).__name__}: {exc.message}", retryable=False, maybe_sent=True)
    if isinstance(exc, tg_error.NetworkError):  # includes 5xx answers and timeouts before the request left
        return SendError(f"telegram: {type(exc).__name__}: {exc.message}", retryable=True)
    return SendError(f"telegram: {type(exc).__name__}: {exc.message}", retryable=False)  # Forbidden, InvalidToken
