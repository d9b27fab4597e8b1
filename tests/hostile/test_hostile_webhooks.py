"""Random requests to every webhook through the Flask test client never get a 5xx, and random USSD histories
(`*`, `#`, emoji, 10,000 characters) and random menu walks over USSD and SMS always get a well-formed screen."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.views import MESSAGE_ROUTES, STATUS_ROUTES
from tests.factories import configure_ppi, make_client, make_staff
from tests.hostile.conftest import TELEGRAM_SECRET
from tests.hostile.test_hostile_parsers import bodies, forms, nasty_text

CLIENT_PHONE = "+254700000002"
SHARED_PHONE = "+254700000003"
OFFICER_PHONE = "+254711000001"
PHONES = [CLIENT_PHONE, SHARED_PHONE, OFFICER_PHONE, "+254799999999"]
ROUTES = sorted(["/webhooks" + path for path in list(MESSAGE_ROUTES) + list(STATUS_ROUTES)])
USSD_SCREEN_LIMIT = 182
HOSTILE = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
_sessions = itertools.count(1)

segments = st.one_of(
    st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "98", "99", "0", "00", "#", "*", "**", "", " "]),
    st.text(alphabet="0123456789*#", max_size=8),
    st.text(max_size=15),
    st.sampled_from(["🙂", "👨‍👩‍👧", "ñ", "١٢", "४", "\u202e", "\x00"]),
    st.builds(lambda char, n: char * n, st.sampled_from(["1", "*", "🙂", "#"]), st.integers(1000, 10_000)),
)
menu_walk = st.lists(st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "9", "98", "99", "0", "47", "C0002"]))


@pytest.fixture
def people(services):  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        configure_ppi(session, bands="0-49:Poor,50-100:Better off", show_band_to_client=True)
        make_client(session, external_id="C0002", phones=[CLIENT_PHONE], language="sw")
        make_client(session, external_id="C0003", phones=[SHARED_PHONE])
        make_client(session, external_id="C0004", phones=[SHARED_PHONE], language="ar")
        make_staff(session, external_id="S001", phone=OFFICER_PHONE)


def _ussd(client, session_id: str, phone: str, text: str, *, check_budget: bool = False) -> str:  # type: ignore[no-untyped-def]
    form = {"sessionId": session_id, "serviceCode": "*384#", "phoneNumber": phone, "networkCode": "63902"}
    response = client.post("/webhooks/africastalking/ussd", data={**form, "text": text})
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert body.startswith(("CON ", "END ")), body[:80]
    assert "went wrong" not in body  # "Sorry, something went wrong": an exception was swallowed
    if check_budget:
        assert len(body) - 4 <= USSD_SCREEN_LIMIT, body
    return body


@HOSTILE
@given(route=st.sampled_from(ROUTES), form=forms, body=bodies, as_json=st.booleans())
def test_no_webhook_answers_random_requests_with_a_server_error(client, people, route, form, body, as_json):
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET}
    if as_json:
        response = client.post(route, data=body, headers={**headers, "Content-Type": "application/json"})
    else:
        response = client.post(route, data=form, headers=headers)
    assert response.status_code < 500, response.get_data(as_text=True)[:200]


@HOSTILE
@given(phone=st.sampled_from(PHONES), history=st.lists(segments, max_size=8))
def test_random_ussd_histories_always_get_a_screen(client, people, phone, history):
    session_id = f"hostile-{next(_sessions)}"
    _ussd(client, session_id, phone, "")
    for depth in range(1, len(history) + 1):
        _ussd(client, session_id, phone, "*".join(history[:depth]))


@HOSTILE
@given(phone=st.sampled_from(PHONES), texts=st.lists(nasty_text, min_size=1, max_size=4))
def test_random_ussd_text_that_does_not_extend_the_history_still_gets_a_screen(client, people, phone, texts):
    session_id = f"hostile-{next(_sessions)}"
    for text in texts:  # AT would never send these, but a broken gateway or an attacker might
        _ussd(client, session_id, phone, text)


@HOSTILE
@given(phone=st.sampled_from(PHONES[:3]), walk=menu_walk)
def test_long_random_menu_walks_over_ussd_never_fail(client, people, phone, walk):
    session_id = f"walk-{next(_sessions)}"
    screen = _ussd(client, session_id, phone, "")
    text = ""
    for choice in walk:
        if screen.startswith("END "):
            session_id, text = f"walk-{next(_sessions)}", ""
            _ussd(client, session_id, phone, text)
        text = f"{text}*{choice}" if text else choice
        screen = _ussd(client, session_id, phone, text)


@HOSTILE
@given(
    phone=st.sampled_from(PHONES[:3]), walk=st.lists(st.one_of(st.sampled_from(["1", "2", "YES", "NO"]), nasty_text))
)
def test_random_sms_conversations_never_fail(client, people, services, phone, walk):
    from sqlalchemy import select

    from gateway.models import OutboxMessage

    for text in walk:
        response = client.post(
            "/webhooks/africastalking/sms",
            data={"from": phone, "to": "22384", "text": text, "id": f"ATXid_h{next(_sessions)}"},
        )
        assert response.status_code == 200
    with services.transaction() as session:
        texts = session.scalars(select(OutboxMessage.text).where(OutboxMessage.recipient == phone)).all()
    assert not any("went wrong" in text for text in texts)


@HOSTILE
@given(text=nasty_text, chat=st.integers(-(10**12), 10**12))
def test_random_telegram_messages_never_fail(client, people, text, chat):
    update = {
        "update_id": next(_sessions),
        "message": {"message_id": 1, "date": 1744623067, "text": text, "chat": {"id": chat, "type": "private"}},
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
    response = client.post("/webhooks/telegram", data=json.dumps(update), headers=headers)
    assert response.status_code == 200


def test_a_direct_dial_with_a_menu_choice_shows_only_the_chosen_screen(client, people):
    screen = _ussd(client, "direct-dial", CLIENT_PHONE, "1", check_budget=True)  # *384*123*1#
    assert screen.startswith("CON 1/10 ")


def test_a_hop_after_the_live_state_is_lost_shows_one_screen_that_fits(client, people, services):
    _ussd(client, "lost-state", CLIENT_PHONE, "")
    _ussd(client, "lost-state", CLIENT_PHONE, "1")
    services.redis.flushdb()  # Redis restarted or the key expired in the middle of the session
    _ussd(client, "lost-state", CLIENT_PHONE, "1*2", check_budget=True)


def test_a_telegram_update_without_a_chat_is_not_a_server_error(client):
    headers = {"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET, "Content-Type": "application/json"}
    update = {"update_id": 1, "message": {"message_id": 1, "date": 1744623067, "text": "hi"}}
    assert client.post("/webhooks/telegram", data=json.dumps(update), headers=headers).status_code < 500
