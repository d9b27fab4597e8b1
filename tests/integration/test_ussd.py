"""A PPI survey over the Africa's Talking USSD webhook, end to end, as a feature phone would see it."""

from __future__ import annotations

import itertools
import json

from sqlalchemy import func, select

from conversations.models import ConversationDraft
from surveys.models import SurveyResponse
from tests.factories import CLIENT_PHONE, OFFICER_PHONE, STANDARD_BANDS, configure_ppi, make_client, make_staff

PHONE = CLIENT_PHONE
BANDS = STANDARD_BANDS
_sessions = itertools.count(1)


class Phone:
    """A feature phone dialling the USSD code: keeps Africa's Talking's cumulative `text`."""

    def __init__(self, client, number: str = PHONE) -> None:
        self.http = client
        self.number = number
        self.session_id = ""
        self.history: list[str] = []
        self.screens: list[str] = []

    def dial(self) -> str:
        self.session_id = f"ATUid_{next(_sessions)}"
        self.history = []
        return self._post("")

    def send(self, text: str) -> str:
        self.history.append(text)
        return self._post("*".join(self.history))

    def repeat_last_hop(self) -> str:
        return self._post("*".join(self.history))

    def _post(self, text: str) -> str:
        response = self.http.post(
            "/webhooks/africastalking/ussd",
            data={
                "sessionId": self.session_id,
                "serviceCode": "*384*123#",
                "phoneNumber": self.number,
                "networkCode": "63902",
                "text": text,
            },
        )
        assert response.status_code == 200
        assert response.content_type.startswith("text/plain")
        body = response.get_data(as_text=True)
        assert body.startswith(("CON ", "END ")), body
        assert len(body) - 4 <= 182, f"screen too long ({len(body) - 4}): {body}"
        self.screens.append(body)
        return body


def _answer_whole_survey(phone: Phone, first_screen: str) -> str:
    """Answer 1 to every question (option 1 is always on a question's first page); returns the review screen."""
    screen = first_screen
    for _ in range(10):
        assert screen.startswith("CON ")
        screen = phone.send("1")
    return screen


def _open_survey(phone: Phone) -> str:
    menu = phone.dial()
    assert "1" in menu and menu.startswith("CON ")
    return phone.send("1")


def test_a_client_completes_a_survey_and_sees_a_thank_you_and_band(client, services, survey_client):
    phone = Phone(client)
    review = _answer_whole_survey(phone, _open_survey(phone))
    assert review.startswith("CON ")
    done = phone.send("1")  # submit from the review screen
    assert done.startswith("END ")
    assert "Very poor" in done or "Poor" in done or "At risk" in done or "Non-poor" in done
    assert "%" not in done  # never the likelihoods
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.mode == "self" and survey.channel == "at-ussd"
        assert [a.option_position for a in survey.answers] == [1] * 10
        assert session.scalar(select(func.count()).select_from(ConversationDraft)) == 0


def test_kenya_first_question_with_47_counties_is_paged_and_answerable(client, services, survey_client):
    phone = Phone(client)
    first = _open_survey(phone)
    assert "98" in first  # "98 More"
    page = first
    pages = 1
    while "47" not in page.split("\n", 1)[1]:
        page = phone.send("98")
        pages += 1
        assert pages < 20
    second_question = phone.send("47")
    assert second_question.startswith("CON ") and second_question != page
    with services.transaction() as session:
        draft = session.scalars(select(ConversationDraft)).one()
        assert draft.answers == {"0": 47}


def test_invalid_input_repeats_the_question_and_three_in_a_row_end_politely_keeping_the_draft(
    client, services, survey_client
):
    phone = Phone(client)
    first = _open_survey(phone)
    second = phone.send("1")
    assert second != first
    for _ in range(2):
        again = phone.send("abc")
        assert again.startswith("CON Please reply with a number from 1 to 18.")
        assert "2/10 " in again  # the same question again, after the reason
    final = phone.send("999")
    assert final.startswith("END ")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 1}


def test_dialling_again_offers_to_continue_at_the_first_unanswered_question(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    phone.send("2")
    phone.send("1")  # answers Q1=2, Q2=1; then the session drops
    again = Phone(client)
    offer = _open_survey(again)
    assert offer.startswith("CON ") and "1 Continue" in offer and "2 Start again" in offer
    continued = again.send("1")
    assert continued.startswith("CON 3/10 ")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 2, "1": 1}


def test_starting_again_discards_the_draft(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    phone.send("2")
    again = Phone(client)
    _open_survey(again)
    restarted = again.send("2")
    assert restarted.startswith("CON 1/10 ")


def test_a_repeated_hop_returns_the_same_screen_and_saves_nothing_twice(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    screen = phone.send("3")
    assert phone.repeat_last_hop() == screen
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 3}


def test_a_shared_phone_first_asks_who_is_speaking(client, services, survey_client):
    with services.transaction() as session:
        make_client(session, external_id="C0200", name="Peter Otieno", phones=[PHONE])
    first = Phone(client).dial()
    assert "Jane" in first and "Peter" in first


def test_an_unknown_phone_gets_a_polite_end(client, survey_client):
    body = Phone(client, number="+254799999999").dial()
    assert body.startswith("END ")


def test_a_request_missing_required_fields_gets_400(client):
    response = client.post("/webhooks/africastalking/ussd", data={"sessionId": "x"})
    assert response.status_code == 400


def test_an_officer_surveys_a_client_and_sees_score_and_band(client, services, survey_client):
    with services.transaction() as session:
        officer = make_staff(session, external_id="S001", phone=OFFICER_PHONE)
        officer_id = officer.id
    phone = Phone(client, number=OFFICER_PHONE)
    menu = phone.dial()
    assert menu.startswith("CON ")
    phone.send("1")
    confirm = phone.send("C0002")
    assert "Ja" in confirm and "Jane" not in confirm  # partly masked
    phone.send("1")  # yes, this is the client
    for _ in range(10):
        phone.send("1")
    done = phone.send("1")  # submit
    assert done.startswith("END ")
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.mode == "officer" and survey.officer_id == officer_id
        assert str(survey.headline_score) in done


def _officer_finds_client(phone: Phone) -> str:
    phone.dial()
    phone.send("1")
    phone.send("C0002")
    return phone.send("1")  # yes, this is the client


def test_an_officer_whose_session_dropped_continues_the_clients_survey(client, services, survey_client, officer_phone):
    phone = Phone(client, number=officer_phone)
    _officer_finds_client(phone)
    phone.send("2")
    phone.send("1")  # answers Q1=2, Q2=1; then the session drops
    again = Phone(client, number=officer_phone)
    offer = _officer_finds_client(again)
    assert "You started a survey on" in offer and "1 Continue survey" in offer and "2 Start again" in offer
    assert again.send("1").startswith("CON 3/10 ")
    for _ in range(8):
        again.send("1")
    assert again.send("1").startswith("END ")  # submit
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.mode == "officer"
        assert [a.option_position for a in sorted(survey.answers, key=lambda a: a.question_number)][:3] == [2, 1, 1]
        assert session.scalar(select(func.count()).select_from(ConversationDraft)) == 0


def test_an_officer_starting_again_discards_the_clients_draft(client, services, survey_client, officer_phone):
    phone = Phone(client, number=officer_phone)
    _officer_finds_client(phone)
    phone.send("3")
    again = Phone(client, number=officer_phone)
    _officer_finds_client(again)
    assert again.send("2").startswith("CON 1/10 ")
    with services.transaction() as session:
        assert session.scalar(select(func.count()).select_from(ConversationDraft)) == 0


def test_a_clients_own_draft_is_not_offered_to_an_officer(client, services, survey_client, officer_phone):
    own = Phone(client)
    _open_survey(own)
    own.send("4")  # the client's own survey, left unfinished
    assert _officer_finds_client(Phone(client, number=officer_phone)).startswith("CON 1/10 ")


def test_menu_entries_switched_off_in_settings_are_hidden_and_the_others_keep_their_numbers(settings, survey_client):
    from dataclasses import replace

    from app import create_app

    ppi_only = create_app(replace(settings, menu_off="balances,statement,change_pin"))
    try:
        phone = Phone(ppi_only.test_client())
        menu = phone.dial()
        assert "1 PPI survey" in menu and "4 My progress" in menu and "6 Language" in menu
        assert "Balances" not in menu and "Mini-statement" not in menu and "Change PIN" not in menu
        assert "Please choose from the menu." in phone.send("2")
        assert phone.send("1").startswith("CON 1/10 ")  # the survey is still 1
    finally:
        ppi_only.extensions["services"].dispose()


def test_a_client_without_a_language_of_their_own_gets_consent_in_their_offices(client, services):
    from consent import service as consent
    from consent.models import ConsentEvent
    from tests.factories import make_office

    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        office = make_office(session, default_language="sw")
        make_client(session, external_id="C0008", name="Jane Wanjiru", phones=[PHONE], office=office)
    phone = Phone(client)
    assert "Menyu kuu" in phone.dial()
    asked = phone.send("5")
    swahili = consent.consent_text("sw").text.split("\n")[0]
    assert swahili[:30] in asked and consent.consent_text("en").text.split("\n")[0][:30] not in asked
    phone.send("1")  # yes
    with services.transaction() as session:
        assert session.scalars(select(ConsentEvent)).one().language == "sw"


def test_live_state_never_holds_the_raw_ussd_text(client, services, survey_client):
    phone = Phone(client)
    _open_survey(phone)
    phone.send("2")
    keys = services.redis.keys("conv:*")
    assert keys
    stored = json.dumps(json.loads(services.redis.get(keys[0])))
    assert "1*2" not in stored


def test_a_survey_on_a_classic_scorecard_is_scored_with_its_single_set_of_points(client, services):
    with services.transaction() as session:
        configure_ppi(session, scorecard_id="KEN-2008", headline_line="below-national", bands=BANDS)
        make_client(session, external_id="C0002", phones=[PHONE])
    phone = Phone(client)
    screen = _open_survey(phone)
    for _ in range(10):
        assert screen.startswith("CON ")
        screen = phone.send("2")
    done = phone.send("1")
    assert done.startswith("END ")
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.scorecard_id == "KEN-2008"
        assert {line.line_slug for line in survey.line_results} >= {"below-national", "below-usaid-extreme"}
        assert len({line.score for line in survey.line_results}) == 1  # classic: one score for every line


def test_a_client_reading_a_language_without_an_overlay_gets_the_published_questions(client, services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        make_client(session, external_id="C0003", phones=[PHONE], language="fr")
    first_question = _open_survey(Phone(client))
    assert first_question.startswith("CON 1/10 ") and "Mombasa" in first_question


def test_a_repeated_final_hop_gets_the_same_end_screen_and_saves_one_survey(client, services, survey_client):
    phone = Phone(client)
    _answer_whole_survey(phone, _open_survey(phone))
    done = phone.send("1")
    assert done.startswith("END ")
    assert phone.repeat_last_hop() == done
    with services.transaction() as session:
        assert len(session.scalars(select(SurveyResponse)).all()) == 1


def test_an_answer_hop_only_writes_the_answer_to_the_draft(client, services, survey_client, monkeypatch):
    """A survey hop's one statement is the durable draft write, committed as it runs: who is calling, their name and
    language and the PPI settings come from the session's live state (read on the first hop)."""
    from sqlalchemy import event

    from db import DriverStatement

    phone = Phone(client)
    _open_survey(phone)
    phone.send("1")
    statements: list[str] = []

    def listener(*args: object) -> None:
        statements.append(" ".join(str(args[2]).split()))

    run_on_driver = DriverStatement.run

    def recorded(statement: DriverStatement, parameters: dict) -> None:  # type: ignore[type-arg]
        statements.append(" ".join(statement.sql.split()))
        run_on_driver(statement, parameters)

    monkeypatch.setattr(DriverStatement, "run", recorded)  # the statements run on the driver, past SQLAlchemy
    engines = (services.engine, services.autocommit_engine)
    for engine in engines:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        assert phone.send("1").startswith("CON 3/10 ")
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", listener)
    assert [statement.split(" (")[0] for statement in statements] == ["INSERT INTO conversation_drafts AS stored"]
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft.answers)).one() == {"0": 1, "1": 1}


def test_the_dial_reads_who_is_calling_and_the_settings_and_the_survey_choice_only_the_draft(
    client, services, survey_client
):
    """The first hop shows the menu, which needs neither the draft nor the PIN status: the survey choice on the next
    hop reads the draft (and still offers to continue it), in autocommit as the hop's only statement, and not the
    client's PIN status, which only a service behind the PIN reads."""
    from sqlalchemy import event

    tables: list[tuple[str, str]] = []

    def listener_for(pool: str):
        def listener(*args: object) -> None:
            tables.append((pool, " ".join(str(args[2]).split()).split(" FROM ")[1].split()[0]))

        return listener

    listeners = [
        (services.engine, listener_for("transaction")),
        (services.autocommit_engine, listener_for("autocommit")),
    ]
    for engine, listener in listeners:
        event.listen(engine, "before_cursor_execute", listener)
    try:
        phone = Phone(client)
        assert phone.dial().startswith("CON Main menu")
        dial_tables, tables[:] = list(tables), []
        phone.send("1")
        phone.send("1")  # one answer, into the draft
        phone.dial()
        tables[:] = []
        assert "1 Continue" in phone.send("1")
    finally:
        for engine, listener in listeners:
            event.remove(engine, "before_cursor_execute", listener)
    assert dial_tables == [("transaction", "staff"), ("transaction", "clients"), ("transaction", "ppi_settings")]
    assert tables == [("autocommit", "conversation_drafts")]


def test_a_language_chosen_mid_session_is_used_for_the_rest_of_that_session(client, services, survey_client):
    phone = Phone(client)
    assert phone.dial().startswith("CON Main menu")
    phone.send("6")  # Language
    phone.send("2")  # Kiswahili
    assert phone.send("00").startswith("CON Menyu kuu")
    assert phone.send("1").startswith("CON 1/10 Kaya inaishi katika kaunti gani?")


def _end_notice(client, session_id: str, **fields: str):
    form = {"sessionId": session_id, "phoneNumber": PHONE, "status": "Failed", "input": "1*2*4821"} | fields
    return client.post("/webhooks/africastalking/ussd/end", data=form)


def test_africas_talkings_end_of_session_notice_clears_the_live_state_and_keeps_the_draft(
    client, services, survey_client, caplog
):
    phone = Phone(client)
    _open_survey(phone)
    phone.send("2")
    other = Phone(client, number=PHONE)
    other.dial()  # another session of the same phone is left alone
    assert len(services.redis.keys("conv:at-ussd:*")) == 2

    with caplog.at_level("INFO"):
        response = _end_notice(
            client, phone.session_id, hopsCount="3", durationInMillis="61000", errorMessage="Session timed out"
        )
    assert response.status_code == 200
    assert [key.decode() for key in services.redis.keys("conv:at-ussd:*")] == [f"conv:at-ussd:{other.session_id}"]
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 2}
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Failed, 3 hops, 61000 ms (Session timed out)" in logged
    assert PHONE not in logged and "4821" not in logged  # neither the number nor the input (it holds any PIN)

    offer = _open_survey(Phone(client))  # the next dial still offers the saved answers
    assert "1 Continue" in offer


def test_an_end_notice_without_a_session_id_is_400_and_one_for_an_unknown_session_is_200(client):
    missing = client.post("/webhooks/africastalking/ussd/end", data={"phoneNumber": PHONE, "status": "Success"})
    assert missing.status_code == 400 and "sessionId" in missing.get_data(as_text=True)
    assert _end_notice(client, "ATUid_never_seen", status="Success", phoneNumber="garbage").status_code == 200


def test_an_officer_typing_the_ppi_shortcut_on_ussd_goes_on_through_the_survey(
    client, services, survey_client, officer_phone
):
    phone = Phone(client, number=officer_phone)
    phone.dial()
    confirm = phone.send("PPI C0002")  # the SMS shortcut, typed on the officer's menu
    assert "(C0002)" in confirm and confirm.startswith("CON ")
    first = phone.send("1")  # yes, this is the client: Africa's Talking now sends "PPI C0002*1"
    assert first.startswith("CON 1/10 "), first
    assert phone.send("1").startswith("CON 2/10 ")
    assert "Please type the client ID" not in phone.send("00")  # the menu key works again too
