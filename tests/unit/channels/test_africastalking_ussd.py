"""Africa's Talking USSD: what AT posts on each hop becomes one Inbound; our replies become CON/END screens."""

from __future__ import annotations

import pytest
from channel_fakes import fixture_form, form_request

from gateway.channels.africastalking_ussd import AfricasTalkingUSSD
from gateway.channels.base import BadRequest, Forbidden, SendError
from gateway.messages import Choice, Outbound, Reply

PARSE_TABLE = [
    ("first hop has empty text", "at_ussd_first_hop.form", ""),
    ("menu path is passed whole", "at_ussd_menu_path.form", "1*2"),
    ("free text containing star is kept whole", "at_ussd_free_text_with_star.form", "1*2*Shop * kiosk"),
]


@pytest.mark.parametrize(("fixture", "text"), [r[1:] for r in PARSE_TABLE], ids=[r[0] for r in PARSE_TABLE])
def test_parse_passes_the_full_input_history_through(fixture: str, text: str) -> None:
    [inbound] = AfricasTalkingUSSD().parse(form_request(fixture_form(fixture)))

    assert inbound.channel == "at-ussd"
    assert inbound.sender == "+254711000111"
    assert inbound.session_id == "ATUid_3b1c8e2f0a9d4c6b"
    assert inbound.text == text


@pytest.mark.parametrize("missing", ["sessionId", "serviceCode", "phoneNumber", "networkCode", "text"])
def test_parse_rejects_a_request_missing_a_field_and_names_it(missing: str) -> None:
    form = fixture_form("at_ussd_menu_path.form")
    del form[missing]

    with pytest.raises(BadRequest, match=missing):
        AfricasTalkingUSSD().parse(form_request(form))


@pytest.mark.parametrize(
    ("field", "value"),
    [("phoneNumber", "not-a-number"), ("phoneNumber", ""), ("sessionId", "")],
    ids=["garbage phone", "empty phone", "empty session"],
)
def test_parse_rejects_unusable_values(field: str, value: str) -> None:
    form = fixture_form("at_ussd_menu_path.form") | {field: value}

    with pytest.raises(BadRequest, match=field):
        AfricasTalkingUSSD().parse(form_request(form))


def test_the_phone_is_read_the_same_on_every_hop_of_a_session() -> None:
    """Phone numbers are normalised once and remembered: a good number keeps its E.164 form on every hop (with or
    without AT's plus), and a bad one is refused on every hop, not only the first."""
    channel = AfricasTalkingUSSD()
    form = fixture_form("at_ussd_menu_path.form")
    senders = [channel.parse(form_request(form | {"phoneNumber": raw}))[0].sender for raw in ("254711000111",) * 3]
    assert senders == ["+254711000111"] * 3
    for _ in range(3):
        with pytest.raises(BadRequest, match="phoneNumber"):
            channel.parse(form_request(form | {"phoneNumber": "+2547"}))


RESPOND_TABLE = [
    ("question continues", [Reply("Je, una redio?\n1. Ndiyo\n2. Hapana")], "CON Je, una redio?\n1. Ndiyo\n2. Hapana"),
    ("final reply ends", [Reply("Asante!", final=True)], "END Asante!"),
    ("several replies share one screen", [Reply("Umechagua 1."), Reply("Swali 2?")], "CON Umechagua 1.\nSwali 2?"),
    (
        "last reply decides the keyword",
        [Reply("Imehifadhiwa."), Reply("Kwaheri", final=True)],
        "END Imehifadhiwa.\nKwaheri",
    ),
    ("no reply ends the session", [], "END "),
    ("choices are not rendered twice", [Reply("Chagua:\n1. A", choices=(Choice("1", "A"),))], "CON Chagua:\n1. A"),
    ("babel spaces made gsm7", [Reply("Salio: Ksh\u00a01,500.00", final=True)], "END Salio: Ksh 1,500.00"),
]


@pytest.mark.parametrize(("replies", "body"), [r[1:] for r in RESPOND_TABLE], ids=[r[0] for r in RESPOND_TABLE])
def test_respond_renders_a_con_or_end_screen(replies: list[Reply], body: str) -> None:
    response = AfricasTalkingUSSD().respond(replies)

    assert response.body == body
    assert response.status == 200
    assert response.content_type.startswith("text/plain")


TOKEN_TABLE = [
    ("right token", "s3cret", {"token": "s3cret"}, True),
    ("wrong token", "s3cret", {"token": "guess"}, False),
    ("missing token", "s3cret", {}, False),
    ("non-ascii token", "s3cret", {"token": "sé"}, False),
    ("no token configured", "", {}, True),
]


@pytest.mark.parametrize(
    ("configured", "query", "accepted"), [r[1:] for r in TOKEN_TABLE], ids=[r[0] for r in TOKEN_TABLE]
)
def test_verify_checks_the_callback_token(configured: str, query: dict[str, str], accepted: bool) -> None:
    request = form_request(fixture_form("at_ussd_first_hop.form"), query=query)
    channel = AfricasTalkingUSSD(webhook_token=configured)

    if accepted:
        channel.verify(request)
    else:
        with pytest.raises(Forbidden):
            channel.verify(request)


def test_ussd_cannot_push_messages() -> None:
    with pytest.raises(SendError) as caught:
        AfricasTalkingUSSD().send(Outbound("at-ussd", "+254711000111", "hi", "k1"))

    assert caught.value.retryable is False


def test_the_end_of_session_notice_is_read_without_its_input() -> None:
    [end] = AfricasTalkingUSSD().parse_end(form_request(fixture_form("at_ussd_session_end.form")))

    assert (end.channel, end.session_id, end.phone, end.status) == (
        "at-ussd",
        "ATUid_3b1c8e2f0a9d4c6b",
        "+254711000111",
        "Failed",
    )
    assert (end.hops, end.duration_ms, end.error) == (4, 61000, "Session timed out")
    assert "4821" not in repr(end)  # `input` repeats any PIN typed: it is not kept


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({"hopsCount": "many", "durationInMillis": "-5"}, (None, None)),
        ({"hopsCount": "inf", "durationInMillis": "1500.0"}, (None, 1500)),
    ],
    ids=["not numbers", "overflow and a float"],
)
def test_an_end_notice_with_odd_counts_is_still_taken(changed: dict[str, str], expected: tuple) -> None:
    form = fixture_form("at_ussd_session_end.form") | changed
    [end] = AfricasTalkingUSSD().parse_end(form_request(form))
    assert (end.hops, end.duration_ms) == expected


def test_an_end_notice_needs_a_session_id_and_the_token() -> None:
    with pytest.raises(BadRequest, match="sessionId"):
        AfricasTalkingUSSD().parse_end(form_request(fixture_form("at_ussd_session_end.form") | {"sessionId": " "}))
    with pytest.raises(Forbidden):
        AfricasTalkingUSSD(webhook_token="s3cret").verify(form_request(fixture_form("at_ussd_session_end.form")))
