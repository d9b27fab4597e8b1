"""Every channel adapter's verify/parse/parse_status against random forms, headers, query strings and bodies:
only `BadRequest` (400) and `Forbidden` (403) may escape, and whatever parses is a well-formed message."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.channels import BadRequest, ChannelConfig, Forbidden, build_channels
from gateway.messages import Inbound, StatusUpdate, WebhookRequest

CHANNELS = build_channels(ChannelConfig(at_webhook_token="tok", twilio_auth_token="tw", telegram_webhook_secret="tg"))
OPEN_CHANNELS = build_channels(ChannelConfig())  # no secrets: parse is reached for every request
FIELD_NAMES = [
    "sessionId", "serviceCode", "phoneNumber", "networkCode", "text", "from", "to", "id", "date", "linkId",
    "status", "failureReason", "retryCount", "MessageSid", "From", "To", "Body", "MessageStatus", "ErrorCode",
    "token",
]  # fmt: skip
HEADER_NAMES = ["X-Twilio-Signature", "X-Telegram-Bot-Api-Secret-Token", "Content-Type", "Host"]

nasty_text = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789*#+ ", max_size=40),
    st.sampled_from(["", " ", "+", "+254700000002", "254700000002", "0700000002", "+1", "00", "🙂" * 20, "\x00"]),
    st.builds(lambda char, n: char * n, st.sampled_from(["9", "*", "🙂", "a", "+"]), st.integers(1000, 10_000)),
)
forms = st.dictionaries(st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=10)), nasty_text, max_size=12)
headers = st.dictionaries(st.one_of(st.sampled_from(HEADER_NAMES), st.text(min_size=1, max_size=10)), nasty_text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=20,
)
telegram_shaped = st.fixed_dictionaries(
    {"update_id": json_values},
    optional={
        "message": st.dictionaries(
            st.sampled_from(["message_id", "date", "text", "chat", "from", "contact"]), json_values, max_size=6
        ),
        "callback_query": st.dictionaries(
            st.sampled_from(["id", "data", "from", "message", "chat_instance"]), json_values, max_size=5
        ),
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda value: json.dumps(value).encode()),
    telegram_shaped.map(lambda value: json.dumps(value).encode()),
)
requests = st.builds(
    WebhookRequest,
    url=st.sampled_from(["https://connect.example.org/webhooks/x", "http://localhost/webhooks/x?token=tok"]),
    headers=headers,
    form=forms,
    query=st.dictionaries(st.sampled_from(["token", "x"]), nasty_text, max_size=2),
    body=bodies,
)


def _exercise(channel: object, request: WebhookRequest) -> None:
    for method in ("verify", "parse", "parse_status"):
        call = getattr(channel, method, None)
        if call is None:
            continue
        try:
            result = call(request)
        except (BadRequest, Forbidden):
            continue
        if method == "parse":
            assert all(isinstance(message, Inbound) and message.session_id for message in result)
        if method == "parse_status":
            assert all(isinstance(update, StatusUpdate) for update in result)


SLUGS = sorted(CHANNELS)


@pytest.mark.parametrize("slug", SLUGS)
@settings(deadline=None, max_examples=150)
@given(request=requests)
def test_channels_reject_hostile_requests_only_with_bad_request_or_forbidden(
    slug: str, request: WebhookRequest
) -> None:
    _exercise(CHANNELS[slug], request)
    _exercise(OPEN_CHANNELS[slug], request)


@settings(deadline=None, max_examples=100)
@given(update=telegram_shaped)
def test_telegram_parses_only_private_chat_messages_into_inbound(update: dict[str, object]) -> None:
    request = WebhookRequest(url="https://x/webhooks/telegram", headers={}, form={}, body=json.dumps(update).encode())
    try:
        messages = OPEN_CHANNELS["telegram"].parse(request)
    except BadRequest:
        return
    assert all(message.sender.startswith("tg:") for message in messages)


@pytest.mark.parametrize(
    "update",
    [
        {"update_id": 1, "message": {"message_id": 1, "date": 1744623067, "text": "hi"}},
        {"update_id": 2, "callback_query": {"id": "q1", "data": "1", "chat_instance": "c"}},
    ],
)
def test_telegram_updates_missing_chat_or_sender_are_bad_requests(update: dict[str, object]) -> None:
    request = WebhookRequest(url="https://x/webhooks/telegram", headers={}, form={}, body=json.dumps(update).encode())
    try:
        OPEN_CHANNELS["telegram"].parse(request)
    except BadRequest:
        pass
