"""Redis stops in the middle of a USSD survey: the hop ends politely, /readyz says 503, and once Redis is back the
client dials again and carries on from the durable draft with no answer lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import select

from conversations.models import ConversationDraft
from surveys.models import SurveyResponse
from tests.factories import configure_ppi, make_client
from tests.faults.fault_kit import RedisServer, build_app
from tests.integration.test_ussd import BANDS, PHONE, Phone

pytestmark = [pytest.mark.redis]


@pytest.fixture
def app_on_private_redis(sqlite_url: str, private_redis: RedisServer) -> Iterator[Flask]:
    application = build_app(sqlite_url, private_redis.url)
    services = application.extensions["services"]
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS, show_band_to_client=True)
        make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[PHONE], language="en")
    yield application
    services.dispose()


def test_redis_dies_mid_survey_then_the_client_resumes_from_the_draft(app_on_private_redis, private_redis):
    http = app_on_private_redis.test_client()
    services = app_on_private_redis.extensions["services"]
    phone = Phone(http)
    phone.dial()
    phone.send("1")  # the PPI survey
    for answer in ("2", "1", "3"):
        phone.send(answer)

    private_redis.stop()
    during = phone.send("1")
    assert during.startswith("END ") and "try again" in during.lower()
    readiness = http.get("/readyz")
    assert readiness.status_code == 503
    assert readiness.get_json()["checks"]["redis"] != "ok"
    assert readiness.get_json()["checks"]["database"] == "ok"

    private_redis.start()  # same port, empty: every live session is gone
    assert http.get("/readyz").status_code == 200
    again = Phone(http)
    again.dial()
    offer = again.send("1")
    assert "1 Continue" in offer
    resumed = again.send("1")
    assert resumed.startswith("CON 4/10 ")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 2, "1": 1, "2": 3}
    for _ in range(7):
        again.send("1")
    assert again.send("1").startswith("END ")  # submit from the review screen
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert [answer.option_position for answer in survey.answers] == [2, 1, 3] + [1] * 7
