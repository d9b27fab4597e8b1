"""PostgreSQL stops: USSD hops end politely, /readyz says 503, and after the restart no outbox message or consent
event is lost or doubled; a provider message retried after the recovery is processed exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import func, select

from consent.models import ConsentEvent
from conversations.models import ConversationDraft
from gateway.models import OutboxMessage
from tests.factories import configure_ppi, make_client
from tests.faults.fault_kit import PostgresServer, RedisServer, build_app
from tests.integration.test_ussd import BANDS, PHONE, Phone

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture
def app_on_private_servers(private_postgres: PostgresServer, private_redis: RedisServer) -> Iterator[Flask]:
    application = build_app(private_postgres.url, private_redis.url)
    services = application.extensions["services"]
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS, show_band_to_client=True)
        make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[PHONE], language="en")
    yield application
    services.dispose()


def _sms(http, text: str, message_id: str):  # type: ignore[no-untyped-def]
    form = {"from": PHONE, "to": "22384", "text": text, "id": message_id, "date": "2026-11-23 09:31:07"}
    return http.post("/webhooks/africastalking/sms", data=form)


def _counts(services) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        outbox = session.scalar(select(func.count()).select_from(OutboxMessage))
        consents = session.scalar(select(func.count()).select_from(ConsentEvent))
    return int(outbox or 0), int(consents or 0)


def test_postgres_dies_and_comes_back_without_losing_or_doubling_rows(app_on_private_servers, private_postgres):
    http = app_on_private_servers.test_client()
    services = app_on_private_servers.extensions["services"]
    assert _sms(http, "YES", "ATXid_before").status_code == 200
    phone = Phone(http)
    phone.dial()
    phone.send("1")
    phone.send("2")
    phone.send("1")
    outbox_before, consents_before = _counts(services)
    assert (outbox_before, consents_before) == (1, 1)

    private_postgres.stop()
    during = phone.send("3")
    assert during.startswith("END ") and "try again" in during.lower()
    assert "answers are saved" in during  # taken for the database being down, not for a fault of the service
    readiness = http.get("/readyz")
    assert readiness.status_code == 503 and readiness.get_json()["checks"]["database"] != "ok"
    _sms(http, "NO", "ATXid_during")  # not stored now; the provider sends it again below

    private_postgres.start()
    assert http.get("/readyz").status_code == 200
    assert _counts(services) == (outbox_before, consents_before)  # nothing half-written during the outage
    for _ in range(2):  # the provider retries the message; a second retry must change nothing
        assert _sms(http, "NO", "ATXid_during").status_code == 200
    assert _sms(http, "YES", "ATXid_before").status_code == 200  # an old retry is not processed again
    assert _counts(services) == (outbox_before + 1, consents_before + 1)
    with services.transaction() as session:
        events = session.scalars(select(ConsentEvent).order_by(ConsentEvent.id)).all()
        assert [event.granted for event in events] == [True, False]

    again = Phone(http)
    again.dial()
    assert "1 Continue" in again.send("1")
    assert again.send("1").startswith("CON 3/10 ")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 2, "1": 1}


def test_an_sms_arriving_while_postgres_is_down_is_refused_so_the_provider_sends_it_again(
    app_on_private_servers, private_postgres
):
    http = app_on_private_servers.test_client()
    private_postgres.stop()
    response = _sms(http, "YES", "ATXid_lost")
    assert response.status_code >= 500
