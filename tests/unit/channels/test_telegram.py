"""Telegram: secret-token check, Update parsing (text, /start, buttons, contacts), and sending through
python-telegram-bot against a loopback fake Bot API (`Bot(base_url=...)`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from channel_fakes import FakeProvider, fixture_text

from gateway.channels.base import BadRequest, Forbidden, SendError
from gateway.channels.telegram import Telegram, text_parts
from gateway.messages import Choice, Outbound, Reply, WebhookRequest

TOKEN = "7000000001:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
SECRET = "tg-webhook-Secret_123"
CHAT = "tg:5550001234"


def update_request(
    fixture: str | None = None, body: bytes | None = None, headers: dict[str, str] | None = None
) -> WebhookRequest:
    raw = body if body is not None else fixture_text(fixture or "telegram_text.json").encode()
    return WebhookRequest(url="https://connect.example.org/webhooks/telegram", headers=headers or {}, form={}, body=raw)


def loopback_channel(fake: FakeProvider, timeout: float = 2.0) -> Telegram:
    return Telegram(bot_token=TOKEN, base_url=fake.base_url + "/bot", timeout_seconds=timeout)


def sent_params(fake: FakeProvider, index: int = -1) -> dict[str, Any]:
    """The parameters PTB posted (it sends JSON-encoded values in a JSON or form body)."""
    recorded = fake.requests[index]
    if recorded.headers.get("Content-Type", "").startswith("application/json"):
        return dict(recorded.json())
    return {key: _maybe_json(value) for key, value in recorded.form().items()}


def _maybe_json(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


SECRET_TABLE = [
    ("right secret", {"X-Telegram-Bot-Api-Secret-Token": SECRET}, True),
    ("header name case-insensitive", {"x-telegram-bot-api-secret-token": SECRET}, True),
    ("wrong secret", {"X-Telegram-Bot-Api-Secret-Token": "guess"}, False),
    ("missing header", {}, False),
]


@pytest.mark.parametrize(("headers", "accepted"), [r[1:] for r in SECRET_TABLE], ids=[r[0] for r in SECRET_TABLE])
def test_verify_checks_the_secret_token(headers: dict[str, str], accepted: bool) -> None:
    channel = Telegram(bot_token=TOKEN, webhook_secret=SECRET)

    if accepted:
        channel.verify(update_request(headers=headers))
    else:
        with pytest.raises(Forbidden):
            channel.verify(update_request(headers=headers))


def test_verify_refuses_updates_when_no_secret_is_configured() -> None:
    with pytest.raises(Forbidden, match="not configured"):
        Telegram(bot_token=TOKEN).verify(update_request(headers={"X-Telegram-Bot-Api-Secret-Token": ""}))


PARSE_TABLE = [
    # (fixture, text, callback_id, contact_phone, provider id)
    ("text message", "telegram_text.json", "Ndiyo", None, None, "912345678"),
    ("start command", "telegram_start.json", "/start", None, None, "912345677"),
    ("button press", "telegram_callback.json", "2", "4382bfdwdsb323b2d9", None, "912345679"),
    ("own contact shared", "telegram_contact.json", "", None, "+254711000111", "912345680"),
    ("someone else's contact is not trusted", "telegram_contact_of_someone_else.json", "", None, None, "912345681"),
]


@pytest.mark.parametrize(
    ("fixture", "text", "callback_id", "contact_phone", "update_id"),
    [r[1:] for r in PARSE_TABLE],
    ids=[r[0] for r in PARSE_TABLE],
)
def test_parse_updates_from_a_private_chat(
    fixture: str, text: str, callback_id: str | None, contact_phone: str | None, update_id: str
) -> None:
    [inbound] = Telegram().parse(update_request(fixture))

    assert inbound.channel == "telegram"
    assert inbound.sender == CHAT
    assert inbound.session_id == "telegram:" + CHAT
    assert inbound.text == text
    assert inbound.callback_id == callback_id
    assert inbound.contact_phone == contact_phone
    assert inbound.provider_message_id == update_id


def test_parse_keeps_the_message_time() -> None:
    [inbound] = Telegram().parse(update_request("telegram_text.json"))

    assert inbound.received_at == datetime(2025, 4, 14, 9, 31, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    "fixture", ["telegram_group_message.json", "telegram_edited_message.json"], ids=["group chat", "edited message"]
)
def test_updates_we_do_not_answer_parse_to_nothing(fixture: str) -> None:
    assert Telegram().parse(update_request(fixture)) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"message": {"text": "no update id"}}',
        b'{"update_id": 1, "message": {"message_id": 1, "date": 1e300, "chat": {"id": 5, "type": "private"}}}',
    ],
    ids=["empty", "not json", "array", "no update_id", "date beyond time_t"],
)
def test_malformed_body_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest):
        Telegram().parse(update_request(body=body))


def test_respond_is_an_empty_acknowledgement() -> None:
    assert Telegram().respond([Reply("hi")]).body == ""


def ok_message(message_id: int = 45) -> str:
    payload = json.loads(fixture_text("telegram_send_message_ok.json"))
    payload["result"]["message_id"] = message_id
    return json.dumps(payload)


SEND_TABLE = [
    ("plain text", Outbound("telegram", CHAT, "Asante!", "k1"), None),
    (
        "choices become inline buttons",
        Outbound("telegram", CHAT, "Je, una redio?", "k2", choices=(Choice("1", "Ndiyo"), Choice("2", "Hapana"))),
        {"inline_keyboard": [[{"text": "Ndiyo", "callback_data": "1"}], [{"text": "Hapana", "callback_data": "2"}]]},
    ),
    (
        "contact request becomes a reply keyboard",
        Outbound("telegram", CHAT, "Tafadhali shiriki namba yako", "k3", request_contact=True),
        {
            "keyboard": [[{"text": "Share my phone number", "request_contact": True}]],
            "one_time_keyboard": True,
            "resize_keyboard": True,
        },
    ),
]


@pytest.mark.parametrize(("outbound", "markup"), [r[1:] for r in SEND_TABLE], ids=[r[0] for r in SEND_TABLE])
def test_send_posts_the_message_with_its_keyboard(
    fake_provider: FakeProvider, outbound: Outbound, markup: dict[str, Any] | None
) -> None:
    fake_provider.then(200, ok_message(45))

    message_id = loopback_channel(fake_provider).send(outbound)

    assert message_id == "5550001234:45"
    assert fake_provider.requests[-1].path == f"/bot{TOKEN}/sendMessage"
    params = sent_params(fake_provider)
    assert params["chat_id"] == 5550001234
    assert params["text"] == outbound.text
    assert params.get("reply_markup") == markup


def test_send_retries_through_500_and_429_then_succeeds(fake_provider: FakeProvider) -> None:
    flood = {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 3"}
    fake_provider.then(500, '{"ok": false, "error_code": 500, "description": "Internal Server Error"}')
    fake_provider.then(429, json.dumps(flood | {"parameters": {"retry_after": 3}}))
    fake_provider.then(200, ok_message(46))
    channel = loopback_channel(fake_provider)

    outcomes: list[object] = []
    for _ in range(3):
        try:
            outcomes.append(channel.send(Outbound("telegram", CHAT, "Asante!", "k1")))
        except SendError as exc:
            outcomes.append(exc.retryable)

    assert outcomes == [True, True, "5550001234:46"]


SEND_FAILURE_TABLE = [
    ("bad request", 400, "Bad Request: message text is empty", False),
    ("bot blocked by user", 403, "Forbidden: bot was blocked by the user", False),
    ("token revoked", 401, "Unauthorized", False),
    ("bad gateway", 502, "Bad Gateway", True),
]


@pytest.mark.parametrize(
    ("status", "description", "retryable"), [r[1:] for r in SEND_FAILURE_TABLE], ids=[r[0] for r in SEND_FAILURE_TABLE]
)
def test_send_failures_map_to_retry_policy(
    fake_provider: FakeProvider, status: int, description: str, retryable: bool
) -> None:
    fake_provider.then(status, json.dumps({"ok": False, "error_code": status, "description": description}))

    with pytest.raises(SendError) as caught:
        loopback_channel(fake_provider).send(Outbound("telegram", CHAT, "Asante!", "k1"))

    assert caught.value.retryable is retryable


def test_send_times_out_instead_of_hanging(fake_provider: FakeProvider) -> None:
    fake_provider.then_hang()

    with pytest.raises(SendError, match="TimedOut") as caught:
        loopback_channel(fake_provider, timeout=0.2).send(Outbound("telegram", CHAT, "Asante!", "k1"))

    assert caught.value.maybe_sent is True and caught.value.retryable is False  # sent, unanswered: not resent


@pytest.mark.parametrize(
    ("outbound", "reason"),
    [
        (Outbound("telegram", "+254711000111", "hi", "k1"), "chat id"),
        (Outbound("telegram", CHAT, "hi", "k1", choices=(Choice("x" * 65, "Too long"),)), "64 bytes"),
    ],
    ids=["phone number is not a chat", "callback data over 64 bytes"],
)
def test_unsendable_messages_fail_permanently_without_calling_telegram(
    fake_provider: FakeProvider, outbound: Outbound, reason: str
) -> None:
    with pytest.raises(SendError, match=reason) as caught:
        loopback_channel(fake_provider).send(outbound)

    assert caught.value.retryable is False
    assert fake_provider.requests == []


def test_send_without_token_is_a_permanent_error() -> None:
    with pytest.raises(SendError, match="not configured") as caught:
        Telegram().send(Outbound("telegram", CHAT, "hi", "k1"))

    assert caught.value.retryable is False


def test_answer_callback_stops_the_button_spinner(fake_provider: FakeProvider) -> None:
    fake_provider.then(200, '{"ok": true, "result": true}')

    loopback_channel(fake_provider).answer_callback("4382bfdwdsb323b2d9")

    assert fake_provider.requests[-1].path == f"/bot{TOKEN}/answerCallbackQuery"
    assert sent_params(fake_provider)["callback_query_id"] == "4382bfdwdsb323b2d9"


def test_two_sends_in_a_row_each_get_a_fresh_event_loop(fake_provider: FakeProvider) -> None:
    fake_provider.then(200, ok_message(47)).then(200, ok_message(48))
    channel = loopback_channel(fake_provider)

    first = channel.send(Outbound("telegram", CHAT, "1", "k1"))
    second = channel.send(Outbound("telegram", CHAT, "2", "k2"))

    assert (first, second) == ("5550001234:47", "5550001234:48")


def test_a_text_longer_than_telegram_takes_goes_in_parts_with_the_keyboard_last(fake_provider: FakeProvider) -> None:
    text = "\n".join(f"{n:04d} Mkopo umelipwa kikamilifu, asante kwa uaminifu wako." for n in range(120))  # ~6,600
    fake_provider.then(200, ok_message(45)).then(200, ok_message(46))
    outbound = Outbound("telegram", CHAT, text, "k-long", choices=(Choice("0", "Rudi"),))

    message_id = loopback_channel(fake_provider).send(outbound)

    first, second = sent_params(fake_provider, -2), sent_params(fake_provider, -1)
    assert message_id == "5550001234:46"
    assert len(first["text"]) <= 4096 and first["text"].endswith("wako.")  # cut at a line break
    assert first["text"] + "\n" + second["text"] == text
    assert "reply_markup" not in first
    assert second["reply_markup"] == {"inline_keyboard": [[{"text": "Rudi", "callback_data": "0"}]]}


def test_text_parts_count_utf16_units_and_never_split_a_short_text() -> None:
    assert text_parts("Asante!") == ["Asante!"]
    emoji = text_parts("😀" * 3000)  # 6,000 UTF-16 units
    assert [len(part) for part in emoji] == [2048, 952]
