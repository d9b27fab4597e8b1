"""USSD sessions that go wrong the way real ones do: the live state lost in Redis, a hop delivered twice or late, a
result too long for the last screen, and the people an officer or a shared phone has to tell apart."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from conversations.models import ConversationDraft
from conversations.repository import DraftRepository
from surveys.models import SurveyResponse
from tests.conftest import TEST_DATABASE_URL
from tests.factories import configure_ppi, make_client
from tests.integration.test_ussd import PHONE, Phone, _answer_whole_survey, _open_survey


def _draft_answers(services) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        return session.scalars(select(ConversationDraft.answers)).one()


def _survey_count(services) -> int:  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        return len(session.scalars(select(SurveyResponse)).all())


def test_a_hop_after_the_live_state_was_lost_shows_the_menu_and_loses_no_answer(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    for answer in ("5", "3", "2"):
        phone.send(answer)
    services.redis.flushdb()  # Redis restarted, or the key expired, in the middle of the session

    menu = phone.send("4")  # Africa's Talking sends "1*5*3*2*4": none of it may be replayed
    assert menu.startswith("CON Your session was interrupted. Your answers are saved.\nMain menu")
    assert _draft_answers(services) == {"0": 5, "1": 3, "2": 2}
    assert "1 Continue" in phone.send("1")
    assert phone.send("1").startswith("CON 4/10 ")


def test_a_submit_repeated_after_the_end_notice_saves_one_survey(client, services, survey_client):
    phone = Phone(client)
    _answer_whole_survey(phone, _open_survey(phone))
    assert phone.send("1").startswith("END ")
    ended = {"sessionId": phone.session_id, "phoneNumber": PHONE, "status": "Success"}
    assert client.post("/webhooks/africastalking/ussd/end", data=ended).status_code == 200

    phone.repeat_last_hop()  # the gateway's retry of the submit arrives after the end notice cleared the state
    assert _survey_count(services) == 1


def test_a_submit_run_again_because_its_state_was_not_saved_returns_the_first_survey(client, services, survey_client):
    phone = Phone(client)
    _answer_whole_survey(phone, _open_survey(phone))
    key = f"conv:at-ussd:{phone.session_id}"
    before_submit = services.redis.get(key)
    done = phone.send("1")
    services.redis.set(key, before_submit)  # as if Redis had failed between the commit and saving the state

    assert phone.repeat_last_hop() == done  # the submit runs again: same result screen
    assert _survey_count(services) == 1


def test_a_late_copy_of_an_earlier_hop_changes_nothing(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    phone.send("2")
    third_question = phone.send("1")
    assert third_question.startswith("CON 3/10 ")

    assert phone._post("1*2") == third_question  # the hop that answered question 1, delivered again late
    assert phone._post("1") == third_question  # and the one that opened the survey
    assert _draft_answers(services) == {"0": 2, "1": 1}
    assert phone.send("3").startswith("CON 4/10 ")
    assert _draft_answers(services) == {"0": 2, "1": 1, "2": 3}


LONG_BAND = "Vulnerable: at risk of falling back into poverty"


def test_the_last_screen_keeps_the_result_when_it_does_not_fit_one_screen(client, services):
    with services.transaction() as session:
        configure_ppi(session, bands=f"0-100:{LONG_BAND}", show_band_to_client=True)
        make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[PHONE], language="hi")
    phone = Phone(client)
    _answer_whole_survey(phone, _open_survey(phone))
    done = phone.send("1")  # Hindi needs UCS-2: 80 characters a screen
    assert done.startswith("END ") and len(done) - 4 <= 80
    assert LONG_BAND in done and "98" not in done


def test_an_officers_summary_keeps_score_and_band_for_a_long_name(client, services, officer_phone):
    with services.transaction() as session:
        configure_ppi(session, bands=f"0-100:{LONG_BAND}")
        make_client(session, external_id="C0002", name="Wanjiru " * 12 + "Kamau", phones=["+254700000009"])
    phone = Phone(client, number=officer_phone)
    phone.dial()
    phone.send("1")
    phone.send("C0002")
    phone.send("1")
    for _ in range(10):
        phone.send("1")
    done = phone.send("1")
    assert done.startswith("END ") and "98" not in done
    assert f"Band: {LONG_BAND}" in done and "Score: " in done


@pytest.mark.parametrize(("stored", "typed"), [("KC-0002", "kc-0002"), ("kc-0002", "KC-0002"), ("KC 0002", "kc 0002")])
def test_an_officer_finds_a_client_by_id_in_any_case(client, services, officer_phone, stored, typed):
    with services.transaction() as session:
        configure_ppi(session)
        make_client(session, external_id=stored, name="Jane Wanjiru", phones=["+254700000009"])
    phone = Phone(client, number=officer_phone)
    phone.dial()
    phone.send("1")
    confirm = phone.send(typed)
    assert f"({stored})?" in confirm and "No client found" not in confirm


def test_an_officers_sms_form_finds_a_client_typed_in_lower_case(client, services, officer_phone):
    from gateway.models import OutboxMessage

    with services.transaction() as session:
        configure_ppi(session)
        make_client(session, external_id="KC-0002", name="Jane Wanjiru", phones=["+254700000009"])
    form = {"from": officer_phone, "to": "22384", "text": "PPI kc-0002 " + " ".join(["1"] * 10), "id": "ATXid_f1"}
    assert client.post("/webhooks/africastalking/sms", data=form).status_code == 200
    with services.transaction() as session:
        reply = session.scalars(select(OutboxMessage.text).where(OutboxMessage.recipient == officer_phone)).one()
    assert reply.startswith("KC-0002: score ") and "YES" in reply


def test_a_shared_phone_tells_clients_with_the_same_first_name_apart(client, services, survey_client):
    with services.transaction() as session:
        make_client(session, external_id="C0200", name="Jane Otieno", phones=[PHONE])
    menu = Phone(client).dial()
    assert "Jane W." in menu and "Jane O." in menu


@pytest.fixture
def server_far_east_of_utc(monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TZ", "Etc/GMT-12")  # the server's clock is set to UTC+12
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_a_drafts_start_date_is_the_mfis_date_whatever_the_servers_zone(
    client, services, survey_client, officer_phone, server_far_east_of_utc
):
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    started = datetime(yesterday.year, yesterday.month, yesterday.day, 22, 30, tzinfo=UTC)  # 01:30 today in Nairobi
    with services.transaction() as session:
        DraftRepository(session).save_answer(
            client_id=survey_client,
            mode="officer",
            scorecard_id="KEN-2024",
            question_index=0,
            option_position=2,
            officer_id=None,
            now=started,
            ttl_days=7,
        )
    phone = Phone(client, number=officer_phone)
    phone.dial()
    phone.send("1")
    phone.send("C0002")
    offer = phone.send("1")
    today_in_nairobi = started + timedelta(hours=3)
    assert f"You started a survey on {today_in_nairobi.day} {today_in_nairobi:%b}." in offer


def test_an_officer_sees_a_short_name_masked_too(client, services, officer_phone):
    with services.transaction() as session:
        configure_ppi(session)
        make_client(session, external_id="C0009", name="Jo Li", phones=["+254700000009"])
    phone = Phone(client, number=officer_phone)
    phone.dial()
    phone.send("1")
    confirm = phone.send("C0009")
    assert "J* L* (C0009)?" in confirm and "Jo" not in confirm


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="statement_timeout and row locks: PostgreSQL")
def test_a_hop_stuck_behind_a_lock_ends_politely_within_the_statement_timeout(settings, survey_client):
    from dataclasses import replace

    from sqlalchemy import text

    from app import create_app

    impatient = create_app(replace(settings, database_statement_timeout_ms=300))
    services = impatient.extensions["services"]
    try:
        phone = Phone(impatient.test_client())
        _open_survey(phone)
        phone.send("2")
        screens: list[str] = []
        with services.engine.connect() as other:  # another transaction holds the draft row (a long report, a lock)
            other.execute(text("SELECT id FROM conversation_drafts FOR UPDATE"))
            hop = threading.Thread(target=lambda: screens.append(phone.send("1")))
            hop.start()
            hop.join(timeout=10)  # cancelled by the database well before the gateway's time-out
            in_time = not hop.is_alive()
            other.rollback()
        hop.join()
        assert in_time, "the hop waited for the lock"
        assert screens[0].startswith("END ") and "Your answers are saved" in screens[0]
        assert _draft_answers(services) == {"0": 2}
        again = Phone(impatient.test_client())
        _open_survey(again)
        assert again.send("1").startswith("CON 2/10 ")  # continues where the answers stopped
    finally:
        services.dispose()
