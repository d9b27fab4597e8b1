"""The phone simulator: the page and its messages endpoint, and the terminal phone (`simulate ussd|sms`).

The terminal commands run in-process through Flask's CLI runner (which hands them the test app), and once over
HTTP against a real server on a loopback port, as `--url` would in a demo.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select
from werkzeug.serving import make_server

from app import create_app
from gateway.models import OutboxMessage
from simulator.terminal import simulate_group
from surveys.models import SurveyResponse
from tests.factories import CLIENT_PHONE, STANDARD_BANDS

PHONE = CLIENT_PHONE
OTHER_PHONE = "+254700000003"
BANDS = STANDARD_BANDS


def page_config(html: str) -> dict:
    found = re.search(r'<script id="simulator-config" type="application/json">(.*?)</script>', html, re.S)
    assert found, "the page carries its configuration"
    return json.loads(found.group(1))


def add_outbox(services, recipient: str, text: str, key: str) -> None:
    with services.transaction() as session:
        session.add(OutboxMessage(idempotency_key=key, channel="console", recipient=recipient, text=text))


@pytest.fixture
def app_with_token(settings) -> Iterator[Flask]:
    application = create_app(dataclasses.replace(settings, at_webhook_token="s3cret-token"))
    yield application
    application.extensions["services"].dispose()


@pytest.fixture
def production_app(settings) -> Iterator[Flask]:
    application = create_app(dataclasses.replace(settings, app_env="production", secret_key="not-the-dev-key"))
    yield application
    application.extensions["services"].dispose()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


# The page


def test_the_page_shows_a_dial_pad_the_demo_phones_and_both_panes(client):
    response = client.get("/simulator")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    for key in "0123456789*#":
        assert f'data-key="{key}"' in html
    shown = html.replace("\u2066", "").replace("\u2069", "")  # the code sits in a bidi isolate
    assert "Dial *384*123#" in shown and "Hang up" in html and "Send SMS" in html
    assert 'value="+254700000001"' in html and 'value="+254700000010"' in html
    assert 'value="+254711000001"' in html and 'value="+254711000004"' in html
    assert '<label for="phone">' in html and '<label for="reply">' in html and '<label for="sms">' in html


def test_the_page_loads_nothing_from_outside_so_the_content_security_policy_allows_it(client):
    html = client.get("/simulator").get_data(as_text=True)
    assert "<link" not in html
    assert not re.search(r"<script[^>]+src=", html)
    assert "http://" not in html and "https://" not in html


def test_the_page_language_comes_from_the_lang_parameter(client):
    arabic = client.get("/simulator?lang=ar").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in arabic
    assert '<option value="ar" lang="ar" selected>' in arabic
    unknown = client.get("/simulator?lang=xx").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in unknown


def test_the_pages_ussd_address_answers_a_first_hop(client, survey_client):
    config = page_config(client.get("/simulator").get_data(as_text=True))
    response = client.post(
        config["ussdUrl"],
        data={
            "sessionId": "ATUid_page",
            "serviceCode": config["serviceCode"],
            "phoneNumber": PHONE,
            "networkCode": config["networkCode"],
            "text": "",
        },
    )
    assert response.status_code == 200
    assert response.get_data(as_text=True).startswith("CON ")


def test_with_a_webhook_token_the_pages_ussd_address_carries_it_and_is_accepted(app_with_token, services):
    http = app_with_token.test_client()
    config = page_config(http.get("/simulator").get_data(as_text=True))
    assert config["ussdUrl"].endswith("?token=s3cret-token")
    form = {
        "sessionId": "ATUid_t",
        "serviceCode": "*384*123#",
        "phoneNumber": PHONE,
        "networkCode": "63902",
        "text": "",
    }
    assert http.post(config["ussdUrl"], data=form).status_code == 200
    assert http.post("/webhooks/africastalking/ussd", data=form).status_code == 403


def test_without_a_webhook_token_the_page_adds_none(client):
    config = page_config(client.get("/simulator").get_data(as_text=True))
    assert "token" not in config["ussdUrl"]


# The messages endpoint


def test_messages_returns_only_that_phones_outbox_rows_oldest_first(client, services):
    add_outbox(services, PHONE, "first", "k1")
    add_outbox(services, OTHER_PHONE, "not yours", "k2")
    add_outbox(services, PHONE, "second", "k3")
    response = client.get("/simulator/messages", query_string={"phone": PHONE})
    assert response.status_code == 200
    assert [message["text"] for message in response.json["messages"]] == ["first", "second"]


def test_messages_after_an_id_returns_only_newer_ones(client, services):
    add_outbox(services, PHONE, "seen", "k1")
    seen_id = client.get("/simulator/messages", query_string={"phone": PHONE}).json["messages"][-1]["id"]
    add_outbox(services, PHONE, "new", "k2")
    newer = client.get("/simulator/messages", query_string={"phone": PHONE, "after": seen_id}).json["messages"]
    assert [message["text"] for message in newer] == ["new"]


def test_messages_accepts_a_phone_written_with_spaces(client, services):
    add_outbox(services, PHONE, "hello", "k1")
    response = client.get("/simulator/messages", query_string={"phone": "+254 700 000 002"})
    assert [message["text"] for message in response.json["messages"]] == ["hello"]


def test_messages_refuses_something_that_is_not_a_phone(client):
    response = client.get("/simulator/messages", query_string={"phone": "abc"})
    assert response.status_code == 400


def test_an_sms_sent_like_the_page_does_shows_its_reply_in_the_thread(client, survey_client, run_jobs):
    assert client.post("/webhooks/console/sms", data={"from": PHONE, "text": "menu", "id": "sim-1"}).status_code == 200
    run_jobs()
    texts = [message["text"] for message in client.get(f"/simulator/messages?phone={PHONE}").json["messages"]]
    assert len(texts) == 1 and "PPI" in texts[0]


def test_in_production_the_whole_simulator_is_hidden(production_app, services):
    add_outbox(services, PHONE, "private", "k1")
    http = production_app.test_client()
    assert http.get("/simulator").status_code == 404
    assert http.get("/simulator/messages", query_string={"phone": PHONE}).status_code == 404


# The terminal phone


def test_terminal_ussd_completes_a_survey_in_process(runner, services, survey_client):
    replies = ["1"] + ["1"] * 10 + ["1"]  # menu: PPI survey; 10 answers; submit on the review screen
    result = runner.invoke(simulate_group, ["ussd", "--phone", PHONE], input="\n".join(replies) + "\n")
    assert result.exit_code == 0, result.output
    assert "Thank you! Your survey is complete." in result.output
    assert result.output.rstrip().endswith("Session ended.")
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.channel == "at-ussd" and [answer.option_position for answer in survey.answers] == [1] * 10


def test_terminal_ussd_hangs_up_on_an_empty_line_and_on_end_of_input(runner, survey_client):
    on_empty = runner.invoke(simulate_group, ["ussd", "--phone", PHONE], input="\n")
    assert on_empty.exit_code == 0 and "PPI survey" in on_empty.output and "Hung up." in on_empty.output
    on_eof = runner.invoke(simulate_group, ["ussd", "--phone", PHONE], input="1\n")
    assert on_eof.exit_code == 0 and "1/10" in on_eof.output and "Hung up." in on_eof.output


def test_terminal_ussd_uses_the_configured_webhook_token_in_process(app_with_token, survey_client):
    result = app_with_token.test_cli_runner().invoke(simulate_group, ["ussd", "--phone", PHONE], input="\n")
    assert result.exit_code == 0 and "PPI survey" in result.output and "403" not in result.output


def test_terminal_ussd_refuses_a_phone_that_is_not_international(runner):
    result = runner.invoke(simulate_group, ["ussd", "--phone", "hello"])
    assert result.exit_code == 2 and "international phone number" in result.output


def test_terminal_sms_prints_the_replies_but_not_older_messages(runner, services, survey_client):
    add_outbox(services, PHONE, "an old reminder", "old")
    result = runner.invoke(simulate_group, ["sms", "--phone", PHONE], input="menu\n\n")
    assert result.exit_code == 0, result.output
    assert "< " in result.output and "PPI" in result.output
    assert "an old reminder" not in result.output
    assert result.output.rstrip().endswith("Bye.")


def test_terminal_ussd_against_a_running_server(runner, live_server, survey_client):
    result = runner.invoke(simulate_group, ["ussd", "--phone", PHONE, "--url", live_server], input="1\n\n")
    assert result.exit_code == 0, result.output
    assert "PPI survey" in result.output and "1/10" in result.output and "Hung up." in result.output


def test_terminal_sms_against_a_running_server(runner, live_server, survey_client):
    result = runner.invoke(simulate_group, ["sms", "--phone", PHONE, "--url", live_server], input="menu\n\n")
    assert result.exit_code == 0, result.output
    assert "PPI" in result.output


def test_terminal_says_when_the_server_cannot_be_reached(runner):
    result = runner.invoke(simulate_group, ["sms", "--phone", PHONE, "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1 and "could not reach" in result.output
