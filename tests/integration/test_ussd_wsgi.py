"""The USSD webhook answered before Flask (gateway/ussd_wsgi.py): the same screens, statuses and headers as the
Flask route, which still takes every request that is not an ordinary url-encoded POST."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace

import pytest
from flask import Flask, request_started
from sqlalchemy import select

from app import SECURITY_HEADERS, create_app
from conversations.models import ConversationDraft
from settings import Settings
from tests.factories import CLIENT_PHONE

PATH = "/webhooks/africastalking/ussd"
TOKEN = "at-token-for-tests"


def hop(session_id: str, text: str, phone: str = CLIENT_PHONE) -> dict[str, str]:
    return {
        "sessionId": session_id,
        "serviceCode": "*384*123#",
        "phoneNumber": phone,
        "networkCode": "63902",
        "text": text,
    }


@pytest.fixture
def flask_requests(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests Flask itself handled."""
    seen: list[str] = []

    def record(sender: Flask, **_: object) -> None:
        from flask import request

        seen.append(request.path)

    request_started.connect(record, app)
    yield seen
    request_started.disconnect(record, app)


def test_an_ordinary_hop_is_answered_before_flask_and_another_encoding_by_flask_alike(
    client, survey_client, flask_requests
):
    plain = client.post(PATH, data=hop("ATUid_plain", ""))
    assert flask_requests == []
    multipart = client.post(PATH, data=hop("ATUid_multipart", ""), content_type="multipart/form-data")
    assert flask_requests == [PATH]
    assert plain.status_code == multipart.status_code == 200
    assert plain.get_data(as_text=True) == multipart.get_data(as_text=True)
    assert plain.get_data(as_text=True).startswith("CON ")
    assert plain.headers["Content-Type"] == multipart.headers["Content-Type"] == "text/plain; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        assert plain.headers[name] == multipart.headers[name] == value


def test_the_answer_given_on_a_hop_is_in_the_durable_draft(client, services, survey_client):
    client.post(PATH, data=hop("ATUid_draft", ""))
    client.post(PATH, data=hop("ATUid_draft", "1"))
    question = client.post(PATH, data=hop("ATUid_draft", "1*2"))
    assert question.get_data(as_text=True).startswith("CON ")
    with services.transaction() as session:
        draft = session.scalars(select(ConversationDraft)).one()
        assert draft.answers == {"0": 2}  # the first question (index 0), its second answer


def test_a_missing_field_is_400_and_a_form_field_given_twice_counts_once_as_in_flask(client, survey_client):
    missing = client.post(PATH, data={"sessionId": "ATUid_x", "phoneNumber": CLIENT_PHONE})
    assert missing.status_code == 400
    assert "serviceCode" in missing.get_data(as_text=True)
    body = "&".join(f"{name}={value}" for name, value in hop("ATUid_twice", "").items()) + "&text=9"
    twice = client.post(PATH, data=body, content_type="application/x-www-form-urlencoded")
    assert twice.status_code == 200
    assert twice.get_data(as_text=True).startswith("CON ")  # the first text (the dial), not "9"


def test_a_body_that_is_not_utf8_is_an_empty_form(client, survey_client):
    response = client.post(PATH, data=b"sessionId=\xff\xfe", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "missing field" in response.get_data(as_text=True)


def test_a_body_over_the_limit_and_another_method_are_refused_by_flask(client, survey_client, flask_requests):
    big = client.post(PATH, data={"text": "1" * (1024 * 1024 + 1)})
    assert big.status_code == 413
    assert client.get(PATH).status_code == 405
    assert len(flask_requests) >= 1


@pytest.fixture
def token_app(settings: Settings, survey_client: int) -> Iterator[Flask]:
    """The app with a webhook token, on the database the `app` fixture emptied and Jane's phone is registered in."""
    application = create_app(replace(settings, at_webhook_token=TOKEN))
    yield application
    application.extensions["services"].dispose()


def test_the_webhook_token_is_checked_before_flask_too(token_app):
    client = token_app.test_client()
    forged = client.post(PATH, data=hop("ATUid_forged", ""))
    assert forged.status_code == 403
    assert forged.headers["X-Frame-Options"] == "DENY"
    wrong = client.post(f"{PATH}?token=guess", data=hop("ATUid_forged", ""))
    assert wrong.status_code == 403
    right = client.post(f"{PATH}?token={TOKEN}", data=hop("ATUid_right", ""))
    assert right.status_code == 200
    assert right.get_data(as_text=True).startswith("CON Main menu")


def test_an_unexpected_error_is_500_with_a_correlation_id_and_no_trace(client, survey_client, monkeypatch, caplog):
    import gateway.ussd_wsgi

    def broken(*_args: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(gateway.ussd_wsgi, "receive_messages", broken)
    with caplog.at_level(logging.ERROR, logger="gateway.ussd_wsgi"):
        response = client.post(PATH, data=hop("ATUid_broken", ""))
    assert response.status_code == 500
    body = response.get_json()
    assert body["error"] == "internal error"
    assert "secret detail" not in response.get_data(as_text=True)
    assert body["correlation_id"] in caplog.text
