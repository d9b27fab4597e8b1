"""Races on real PostgreSQL and Redis: the same provider message, the same USSD hop and the same outbox job each
arriving twice at the same moment are handled once. Skipped on the embedded SQLite/fakeredis default."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from conversations.models import ConversationDraft
from gateway import outbox
from gateway.jobs import send_outbound
from gateway.models import OutboxMessage
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL
from tests.factories import configure_ppi, make_client

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.skipif(
        not (TEST_DATABASE_URL and TEST_REDIS_URL), reason="races need TEST_DATABASE_URL and TEST_REDIS_URL"
    ),
]
PHONE = "+254700000002"


def _twice_at_once(action: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(2)

    def run() -> Any:
        barrier.wait(timeout=10)
        return action()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(run) for _ in range(2)]
        return [future.result(timeout=30) for future in futures]


@pytest.fixture
def jane(services):  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        configure_ppi(session)
        return make_client(session, external_id="C0002", phones=[PHONE], language="en").id


def test_the_same_sms_delivered_twice_at_once_is_answered_once(app, services, jane):
    form = {"from": PHONE, "to": "22384", "text": "Hi", "id": "ATXid_race", "date": "2026-11-23 09:31:07"}
    statuses = _twice_at_once(lambda: app.test_client().post("/webhooks/africastalking/sms", data=form).status_code)
    assert statuses == [200, 200]
    with services.transaction() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_the_same_ussd_answer_twice_at_once_is_saved_once(app, services, jane):
    def hop(text: str) -> str:
        form = {"sessionId": "race", "serviceCode": "*384#", "phoneNumber": PHONE, "networkCode": "1", "text": text}
        return app.test_client().post("/webhooks/africastalking/ussd", data=form).get_data(as_text=True)

    hop("")
    hop("1")
    screens = _twice_at_once(lambda: hop("1*5"))
    assert screens[0] == screens[1] and screens[0].startswith("CON 2/10 ")
    with services.transaction() as session:
        assert session.scalars(select(ConversationDraft)).one().answers == {"0": 5}


def _send_one_row_twice_at_once(services) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    with services.transaction() as session:
        message_id = outbox.queue_message(
            session, services, channel="console", recipient=PHONE, text="Reminder", idempotency_key="race"
        )
    return message_id, _twice_at_once(lambda: send_outbound(message_id))


def test_one_outbox_row_sent_by_two_jobs_at_once_reaches_the_provider_once(services):
    _message_id, results = _send_one_row_twice_at_once(services)
    # The job that claims the row sends it; the other finds it claimed, still sending, or (when the threads did not
    # overlap after all) already sent. Either way the provider gets it once.
    assert "sent" in results
    assert set(results) <= {"sent", "claimed elsewhere", "in progress"}
    assert len(services.channels["console"].messages_to(PHONE)) == 1


def test_one_outbox_row_sent_by_two_jobs_at_once_ends_sent(services):
    message_id, _results = _send_one_row_twice_at_once(services)
    with services.transaction() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None and row.status == "sent" and row.attempts == 1
