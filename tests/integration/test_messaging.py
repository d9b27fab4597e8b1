"""SMS and Telegram through the real webhooks: the same dialogue as USSD, replies through the outbox, keywords,
the officer's one-shot SMS form, provider authentication and de-duplication."""

from __future__ import annotations

import itertools
import json

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from accounts.models import Client
from conversations.models import ConversationDraft
from gateway.models import OutboxMessage
from settings import Settings
from surveys.models import SurveyResponse
from tests.factories import CLIENT_PHONE, STANDARD_BANDS, configure_ppi, make_client, make_staff

OFFICER_PHONE = "+254711000001"
BANDS = STANDARD_BANDS
_ids = itertools.count(1)


@pytest.fixture
def people(services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS, show_band_to_client=True)
        client = make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[CLIENT_PHONE], language="en")
        make_staff(session, external_id="S001", phone=OFFICER_PHONE)
        return client.id


def at_sms(client, sender: str, text: str, *, message_id: str | None = None, token: str | None = None):
    query = f"?token={token}" if token else ""
    return client.post(
        "/webhooks/africastalking/sms" + query,
        data={
            "from": sender,
            "to": "22384",
            "text": text,
            "id": message_id or f"ATXid_{next(_ids)}",
            "date": "2026-11-23 09:31:07",
            "linkId": "x",
        },
    )


def outbox_texts(services, recipient: str) -> list[str]:
    with services.transaction() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == recipient).order_by(OutboxMessage.id)
        )
        return [row.text for row in rows]


def test_an_sms_opens_the_menu_and_the_reply_goes_out_through_the_outbox(client, services, people, run_jobs):
    assert at_sms(client, CLIENT_PHONE, "Hi").status_code == 200
    run_jobs()
    texts = outbox_texts(services, CLIENT_PHONE)
    assert len(texts) == 1 and "1" in texts[0] and "PPI" in texts[0]
    with services.transaction() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.channel == "console"  # Africa's Talking is not configured: nothing leaves the machine
        assert row.status == "sent" and row.segments >= 1


def test_a_survey_started_on_ussd_continues_by_sms(client, services, people, run_jobs):
    for text in ("", "1", "1*2"):
        client.post(
            "/webhooks/africastalking/ussd",
            data={
                "sessionId": "S1",
                "serviceCode": "*384#",
                "phoneNumber": CLIENT_PHONE,
                "networkCode": "1",
                "text": text,
            },
        )
    at_sms(client, CLIENT_PHONE, "menu")
    at_sms(client, CLIENT_PHONE, "1")  # PPI survey: the draft is offered
    run_jobs()
    assert "Continue" in outbox_texts(services, CLIENT_PHONE)[-1]
    at_sms(client, CLIENT_PHONE, "1")
    run_jobs()
    assert outbox_texts(services, CLIENT_PHONE)[-1].startswith("2/10")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 2}


def test_a_retried_provider_message_is_processed_once(client, services, people, run_jobs):
    at_sms(client, CLIENT_PHONE, "Hi", message_id="ATXid_same")
    at_sms(client, CLIENT_PHONE, "Hi", message_id="ATXid_same")
    run_jobs()
    assert len(outbox_texts(services, CLIENT_PHONE)) == 1


def test_stop_and_start_set_the_message_opt_out_only(client, services, people, run_jobs):
    at_sms(client, CLIENT_PHONE, "STOP")
    with services.transaction() as session:
        assert session.get(Client, people).message_opt_out is True
    at_sms(client, CLIENT_PHONE, "anza")  # Swahili START
    with services.transaction() as session:
        assert session.get(Client, people).message_opt_out is False


def test_lang_keyword_changes_the_clients_language(client, services, people):
    at_sms(client, CLIENT_PHONE, "LANG sw")
    with services.transaction() as session:
        assert session.get(Client, people).language == "sw"


def test_officer_one_shot_form_names_each_wrong_answer(client, services, people, run_jobs):
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 99 1 1 1 1 1 1 1 1")
    run_jobs()
    reply = outbox_texts(services, OFFICER_PHONE)[-1]
    assert "Q2" in reply and "1-" in reply
    with services.transaction() as session:
        assert session.scalars(select(SurveyResponse)).all() == []


def test_a_one_shot_form_with_many_wrong_answers_is_answered_within_the_sms_budget(client, services, people, run_jobs):
    from gateway.encoding import segment_count

    at_sms(client, OFFICER_PHONE, "PPI C0002 " + " ".join(["99"] * 12))  # ten wrong answers and two extra ones
    run_jobs()
    reply = outbox_texts(services, OFFICER_PHONE)[-1]
    assert reply.startswith("Not saved. Q1: reply 1-") and reply.endswith("; ...")
    assert segment_count(reply) <= services.settings.sms_max_segments


def test_officer_one_shot_form_shows_score_and_band_then_saves_on_yes(client, services, people, run_jobs):
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 1 1 1 1 1 1 1 1 1")
    run_jobs()
    preview = outbox_texts(services, OFFICER_PHONE)[-1]
    assert "YES" in preview and "score" in preview
    at_sms(client, OFFICER_PHONE, "yes")
    run_jobs()
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.mode == "officer" and survey.channel == "at-sms"
        assert str(survey.headline_score) in preview


def test_a_one_shot_form_saved_on_yes_closes_the_officers_draft_for_that_client(client, services, people, run_jobs):
    for text in ("PPI C0002", "1", "2", "1"):  # the question-by-question survey, two answers, then left
        at_sms(client, OFFICER_PHONE, text)
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 1 1 1 1 1 1 1 1 1")
    at_sms(client, OFFICER_PHONE, "YES")
    run_jobs()
    assert outbox_texts(services, OFFICER_PHONE)[-1].startswith("Saved")
    with services.transaction() as session:
        assert len(session.scalars(select(SurveyResponse)).all()) == 1
        assert session.scalars(select(ConversationDraft)).all() == []
    at_sms(client, OFFICER_PHONE, "PPI C0002")
    at_sms(client, OFFICER_PHONE, "1")  # yes, this client: a fresh survey, not "Continue" of the one just saved
    run_jobs()
    assert outbox_texts(services, OFFICER_PHONE)[-1].startswith("1/10")


def test_a_one_shot_form_waits_for_the_very_next_message_only(client, services, people, run_jobs):
    with services.transaction() as session:
        make_client(session, external_id="C0003", name="John Kamau", phones=["+254700000099"], language="en")
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 1 1 1 1 1 1 1 1 1")  # previewed, not confirmed
    at_sms(client, OFFICER_PHONE, "PPI C0003")  # then another client's survey
    at_sms(client, OFFICER_PHONE, "Yes")  # meant for the dialogue's "is this the client?"
    at_sms(client, OFFICER_PHONE, "YES")
    run_jobs()
    with services.transaction() as session:
        assert session.scalars(select(SurveyResponse)).all() == []


def test_yes_to_a_one_shot_form_after_ppi_was_switched_off_says_so(client, services, people, run_jobs):
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 1 1 1 1 1 1 1 1 1")
    with services.transaction() as session:
        configure_ppi(session, status="inactive", bands=BANDS)
    at_sms(client, OFFICER_PHONE, "YES")
    run_jobs()
    assert outbox_texts(services, OFFICER_PHONE)[-1] == "PPI surveys are not active."
    with services.transaction() as session:
        assert session.scalars(select(SurveyResponse)).all() == []


def test_yes_to_a_one_shot_form_after_the_scorecard_changed_saves_nothing(client, services, people, run_jobs):
    at_sms(client, OFFICER_PHONE, "PPI C0002 1 1 1 1 1 1 1 1 1 1")  # previewed on KEN-2024
    with services.transaction() as session:  # the MFI moves to another scorecard before the officer says YES
        configure_ppi(session, scorecard_id="KEN-2008", headline_line="below-national", bands=BANDS)
    at_sms(client, OFFICER_PHONE, "YES")
    run_jobs()
    assert outbox_texts(services, OFFICER_PHONE)[-1] == "Not saved. This survey has changed. Please start again."
    with services.transaction() as session:
        assert session.scalars(select(SurveyResponse)).all() == []


def test_menu_by_sms_in_the_middle_of_a_survey_goes_back_to_the_main_menu(client, services, people, run_jobs):
    at_sms(client, CLIENT_PHONE, "Hi")
    at_sms(client, CLIENT_PHONE, "1")  # question 1
    at_sms(client, CLIENT_PHONE, "MENYU")
    run_jobs()
    reply = outbox_texts(services, CLIENT_PHONE)[-1]
    assert "1 PPI survey" in reply and "Please reply" not in reply


def test_officer_sms_ppi_with_a_client_id_starts_the_question_by_question_survey(client, services, people, run_jobs):
    at_sms(client, OFFICER_PHONE, "PPI C0002")
    run_jobs()
    assert "C0002" in outbox_texts(services, OFFICER_PHONE)[-1]


def test_at_webhooks_need_the_token_when_one_is_configured(database_url):
    from app import create_app

    app = create_app(Settings(app_env="test", database_url=database_url, at_webhook_token="s3cret"))
    http = app.test_client()
    assert at_sms(http, CLIENT_PHONE, "Hi", token="wrong").status_code == 403
    ussd = http.post(
        "/webhooks/africastalking/ussd",
        data={"sessionId": "x", "serviceCode": "*1#", "phoneNumber": CLIENT_PHONE, "text": ""},
    )
    assert ussd.status_code == 403


def test_twilio_signature_is_checked_with_twilios_validator(database_url, services, people):
    from app import create_app

    settings = Settings(
        app_env="test",
        database_url=database_url,
        twilio_account_sid="AC1",
        twilio_auth_token="tok",
        twilio_public_url="https://ic.example.org",
    )
    http = create_app(settings).test_client()
    form = {"MessageSid": "SM1", "From": CLIENT_PHONE, "To": "+15005550006", "Body": "Hi", "AccountSid": "AC1"}
    url = "https://ic.example.org/webhooks/twilio/sms"
    good = RequestValidator("tok").compute_signature(url, form)
    assert http.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": "bad"}).status_code == 403
    response = http.post("/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": good})
    assert response.status_code == 200 and "<Response" in response.get_data(as_text=True)


def _telegram_update(update_id: int, chat_id: int, **message):
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1700000000,
            "chat": {"id": chat_id, "type": "private"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "J"},
            **message,
        },
    }


def test_telegram_links_a_chat_by_shared_contact_then_serves_the_menu(database_url, services, people):
    from app import create_app

    app = create_app(Settings(app_env="test", database_url=database_url, telegram_webhook_secret="tg-secret"))
    http = app.test_client()
    headers = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
    assert (
        http.post(
            "/webhooks/telegram",
            json=_telegram_update(1, 42, text="/start"),
            headers={"X-Telegram-Bot-Api-Secret-Token": "nope"},
        ).status_code
        == 403
    )
    http.post("/webhooks/telegram", json=_telegram_update(2, 42, text="/start"), headers=headers)
    first = outbox_texts(services, "tg:42")
    assert first and "phone" in first[-1].lower()
    contact = {"phone_number": CLIENT_PHONE.lstrip("+"), "first_name": "J", "user_id": 42}
    http.post("/webhooks/telegram", json=_telegram_update(3, 42, contact=contact), headers=headers)
    menu = outbox_texts(services, "tg:42")[-1]
    assert "PPI" in menu
    with services.transaction() as session:
        row = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        assert row.choices  # options become buttons
    assert json.dumps(row.choices)


def test_consent_by_sms_keywords_in_any_language_grants_revokes_and_grants_again(client, services, people, run_jobs):
    from consent.models import ConsentEvent

    for word in ("NDIO", "non", "Sí"):
        at_sms(client, CLIENT_PHONE, word)
    run_jobs()
    with services.transaction() as session:
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [event.granted for event in events] == [True, False, True]
        assert {event.channel for event in events} == {"at-sms"}
        assert all(event.provider_message_id for event in events)
    assert "lenders" in outbox_texts(services, CLIENT_PHONE)[-1]


def test_yes_typed_to_a_yes_no_survey_question_is_an_answer_never_a_consent(client, services, people, run_jobs):
    from consent.service import history

    for text in ("Hi", "1", "1", "1", "1"):  # the menu, the survey, questions 1-3
        at_sms(client, CLIENT_PHONE, text)
    run_jobs()
    assert (
        outbox_texts(services, CLIENT_PHONE)[-1].startswith("4/10")
        and "1 Yes" in outbox_texts(services, CLIENT_PHONE)[-1]
    )
    at_sms(client, CLIENT_PHONE, "Yes")  # "yes, we bought rice", not "share my data"
    run_jobs()
    assert "share your data" not in outbox_texts(services, CLIENT_PHONE)[-1]
    with services.transaction() as session:
        assert history(session, people) == []
    at_sms(client, CLIENT_PHONE, "00")  # the menu: now a YES is a consent again
    at_sms(client, CLIENT_PHONE, "YES")
    run_jobs()
    assert "You agreed to share your data with lenders" in outbox_texts(services, CLIENT_PHONE)[-1]


def test_stop_does_not_change_data_sharing_consent(client, services, people):
    from consent.service import is_sharing

    at_sms(client, CLIENT_PHONE, "YES")
    at_sms(client, CLIENT_PHONE, "STOP")
    with services.transaction() as session:
        assert is_sharing(session, people) is True
        assert session.get(Client, people).message_opt_out is True


class _TelegramChat:
    """Chat 42 on the Telegram webhook, linked to the client's phone by sharing the contact."""

    def __init__(self, database_url: str) -> None:
        from app import create_app

        app = create_app(Settings(app_env="test", database_url=database_url, telegram_webhook_secret="tg-secret"))
        self.http = app.test_client()
        self.headers = {"X-Telegram-Bot-Api-Secret-Token": "tg-secret"}
        self.updates = iter(range(1, 1000))
        contact = {"phone_number": CLIENT_PHONE.lstrip("+"), "first_name": "J", "user_id": 42}
        self._post(_telegram_update(next(self.updates), 42, contact=contact))

    def send(self, text: str) -> None:
        self._post(_telegram_update(next(self.updates), 42, text=text))

    def tap(self, data: str) -> None:
        update_id = next(self.updates)
        self._post(
            {
                "update_id": update_id,
                "callback_query": {
                    "id": f"cb{update_id}",
                    "data": data,
                    "chat_instance": "x",
                    "from": {"id": 42, "is_bot": False, "first_name": "J"},
                    "message": {"message_id": 9, "date": 1700000000, "chat": {"id": 42, "type": "private"}},
                },
            }
        )

    def _post(self, update: dict) -> None:
        self.http.post("/webhooks/telegram", json=update, headers=self.headers)


def test_consent_over_telegram_buttons(database_url, services, people):
    from consent.models import ConsentEvent

    chat = _TelegramChat(database_url)
    chat.send("5")
    screen = outbox_texts(services, "tg:42")[-1]
    assert "lenders" in screen.lower() or "share" in screen.lower()
    chat.tap("1")  # a button of a message sent before buttons were stamped
    with services.transaction() as session:
        events = session.scalars(select(ConsentEvent)).all()
        assert [(event.granted, event.channel) for event in events] == [(True, "telegram")]


def test_a_second_tap_or_a_tap_on_an_older_telegram_message_answers_nothing(database_url, services, people):
    from conversations.models import ConversationDraft

    chat = _TelegramChat(database_url)
    chat.send("1")  # the survey
    assert outbox_texts(services, "tg:42")[-1].startswith("1/10")
    with services.transaction() as session:
        last = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        first_button = last.choices[0][0]  # "1 Mombasa", stamped with this message's stamp
    assert first_button.endswith("~1")
    chat.tap(first_button)
    assert outbox_texts(services, "tg:42")[-1].startswith("2/10")
    chat.tap(first_button)  # the same button again: a double tap
    assert (
        outbox_texts(services, "tg:42")[-1] == "That button belongs to an earlier message. Please use the latest one."
    )
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 1}  # question 2 unanswered


def test_a_stale_button_is_answered_in_the_clients_language(database_url, services, people):
    from accounts.models import Client

    with services.transaction() as session:
        session.get(Client, people).language = "sw"
    chat = _TelegramChat(database_url)
    chat.send("1")  # the survey, in Swahili
    with services.transaction() as session:
        last = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id.desc())).first()
        first_button = last.choices[0][0]
    chat.tap(first_button)
    chat.tap(first_button)  # a double tap
    assert outbox_texts(services, "tg:42")[-1].startswith("Kitufe hicho ni cha ujumbe wa awali.")


def test_the_console_webhook_does_not_exist_in_production(database_url):
    from app import create_app

    production = Settings(
        app_env="production", database_url=database_url, redis_url="redis://127.0.0.1:1/0", secret_key="s"
    )
    http = create_app(production).test_client()
    assert http.post("/webhooks/console/sms", data={"from": CLIENT_PHONE, "text": "YES"}).status_code == 404


def test_sms_max_segments_bounds_every_dialogue_reply_and_pages_the_rest(settings, people, run_jobs):
    from dataclasses import replace

    from app import create_app
    from gateway.encoding import segment_count

    pages = {}
    for segments in (1, 3):
        app = create_app(replace(settings, sms_max_segments=segments))
        try:
            http = app.test_client()
            for text in ("Hi", "1"):  # the menu, then question 1: Kenya's 47 counties
                at_sms(http, CLIENT_PHONE, text)
            run_jobs()
            question = outbox_texts(app.extensions["services"], CLIENT_PHONE)[-1]
            assert question.startswith("1/10") and "98" in question and segment_count(question) <= segments
            pages[segments] = question.count("\n")
            at_sms(http, CLIENT_PHONE, "00")
        finally:
            app.extensions["services"].redis.flushdb()
            app.extensions["services"].dispose()
    assert pages[3] > pages[1]  # a bigger budget shows more counties on the first page


def test_sms_max_segments_outside_1_to_10_stops_the_service():
    from settings import SettingsError

    with pytest.raises(SettingsError, match="SMS_MAX_SEGMENTS must be 1 to 10, not 0"):
        Settings.from_env({"SMS_MAX_SEGMENTS": "0"})
