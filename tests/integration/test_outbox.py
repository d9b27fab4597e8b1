"""The outbound pipeline with a real RQ worker: retries with back-off against a provider that fails twice, a job
that runs twice sends once, permanent failures keep the provider's reason, delivery reports update the row."""

from __future__ import annotations

import dataclasses

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from app import create_app
from gateway import outbox
from gateway.jobs import send_outbound
from gateway.models import OutboxMessage
from tests.unit.channels.channel_fakes import Canned, FakeProvider, fixture_text, serve

CHAT = "tg:5550001234"


@pytest.fixture
def provider():
    with serve(FakeProvider()) as fake:
        yield fake


@pytest.fixture
def telegram_services(app, settings, provider):
    """Services with Telegram pointed at the loopback fake and a real (asynchronous) RQ queue."""
    configured = dataclasses.replace(
        settings, telegram_bot_token="123:abc", telegram_api_url=provider.base_url + "/bot"
    )
    services = create_app(configured).extensions["services"]
    services.queue = Queue("default", connection=services.redis)
    return services


def _queue_one(services, key: str = "reply-1") -> int:
    with services.transaction() as session:
        return outbox.queue_message(
            session, services, channel="telegram", recipient=CHAT, text="Je, una redio?", idempotency_key=key
        )


def _work(services) -> None:
    SimpleWorker([services.queue], connection=services.redis).work(burst=True, with_scheduler=False)


def _release_scheduled(services) -> int:
    """Move retries scheduled by `Retry(interval=...)` back onto the queue, as the scheduler does when they are due."""
    registry = ScheduledJobRegistry(queue=services.queue)
    job_ids = registry.get_job_ids()
    for job_id in job_ids:
        registry.remove(job_id)
        services.queue.enqueue_job(Job.fetch(job_id, connection=services.redis))
    return len(job_ids)


def _row(services, message_id: int) -> OutboxMessage:
    with services.transaction() as session:
        return session.get(OutboxMessage, message_id)


def test_a_provider_failing_twice_is_retried_with_back_off_and_delivers_once(telegram_services, provider):
    provider.then(500, '{"ok": false, "description": "Internal Server Error"}')
    provider.then(502, '{"ok": false, "description": "Bad Gateway"}')
    provider.then(200, fixture_text("telegram_send_message_ok.json"))
    message_id = _queue_one(telegram_services)

    _work(telegram_services)
    assert _row(telegram_services, message_id).status == "queued"
    assert _release_scheduled(telegram_services) == 1  # the retry waited in the scheduled registry
    _work(telegram_services)
    assert _release_scheduled(telegram_services) == 1
    _work(telegram_services)

    row = _row(telegram_services, message_id)
    assert row.status == "sent" and row.attempts == 3
    assert row.provider_message_id
    assert len(provider.requests) == 3


def test_a_job_that_runs_twice_sends_once(telegram_services, provider):
    provider.then(200, fixture_text("telegram_send_message_ok.json"))
    message_id = _queue_one(telegram_services)
    _work(telegram_services)
    assert send_outbound(message_id) == "sent"  # re-running the job finds it sent
    assert len(provider.requests) == 1


def test_queueing_the_same_reply_twice_stores_and_sends_it_once(telegram_services, provider):
    provider.then(200, fixture_text("telegram_send_message_ok.json"))
    first = _queue_one(telegram_services, key="same")
    second = _queue_one(telegram_services, key="same")
    _work(telegram_services)
    assert first == second
    assert len(provider.requests) == 1


def test_a_permanent_failure_is_marked_failed_with_the_providers_reason(telegram_services, provider):
    provider.then(400, '{"ok": false, "error_code": 400, "description": "Bad Request: chat not found"}')
    message_id = _queue_one(telegram_services)
    _work(telegram_services)
    row = _row(telegram_services, message_id)
    assert row.status == "failed" and "chat not found" in row.error.lower()
    assert _release_scheduled(telegram_services) == 0


def test_a_send_that_times_out_waiting_for_the_answer_is_never_sent_again(app, settings, provider):
    """The request reached the provider and no answer came: it may be delivered, so it is marked unknown."""
    configured = dataclasses.replace(
        settings, telegram_bot_token="123:abc", telegram_api_url=provider.base_url + "/bot", send_timeout_seconds=0.3
    )
    services = create_app(configured).extensions["services"]
    services.queue = Queue("default", connection=services.redis)
    provider.then_hang()
    message_id = _queue_one(services)
    _work(services)
    row = _row(services, message_id)
    assert row.status == "unknown" and "not resent" in row.error
    assert _release_scheduled(services) == 0  # no retry scheduled
    assert len([r for r in provider.requests if r.path.endswith("/sendMessage")]) == 1


def test_a_redis_blip_before_sending_gives_the_row_back_for_the_retry(telegram_services, provider, monkeypatch):
    import redis

    from gateway import jobs

    calls = iter([redis.exceptions.ConnectionError("blip")])

    def flaky_limit(services, channel):
        error = next(calls, None)
        if error is not None:
            raise error

    monkeypatch.setattr(jobs, "_respect_rate_limit", flaky_limit)
    provider.then(200, fixture_text("telegram_send_message_ok.json"))
    message_id = _queue_one(telegram_services)
    _work(telegram_services)
    assert _row(telegram_services, message_id).status == "queued"  # not stranded in 'sending'
    assert _release_scheduled(telegram_services) == 1
    _work(telegram_services)
    assert _row(telegram_services, message_id).status == "sent"


def test_a_reply_whose_send_job_was_never_enqueued_is_picked_up_by_the_sweep(telegram_services, provider):
    from datetime import timedelta

    from db import utcnow
    from gateway import jobs

    provider.default = Canned(200, fixture_text("telegram_send_message_ok.json"))
    with telegram_services.transaction() as session:  # committed, then Redis failed before the job was enqueued
        row = OutboxMessage(
            channel="telegram", recipient=CHAT, text="Je, una redio?", idempotency_key="stranded-1", status="queued"
        )
        session.add(row)
        session.flush()
        message_id = row.id
    waiting = _queue_one(telegram_services, key="fresh-1")  # has its job: left alone
    assert jobs.requeue_stranded(telegram_services) == 0  # too fresh to tell from one about to be enqueued
    later = utcnow() + jobs.STRANDED_AFTER + timedelta(seconds=1)
    assert jobs.requeue_stranded(telegram_services, now=later) == 1
    _work(telegram_services)
    assert _row(telegram_services, message_id).status == "sent"
    assert _row(telegram_services, waiting).status == "sent"
    sends = [r for r in provider.requests if r.path.endswith("/sendMessage")]
    assert len(sends) == 2  # each once


def test_the_worker_keeps_one_sweep_scheduled(services) -> None:
    from rq.registry import ScheduledJobRegistry

    from gateway import jobs

    jobs.schedule_sweep(services)
    jobs.schedule_sweep(services)  # a second worker starting in the same minute
    scheduled = ScheduledJobRegistry(queue=services.queue).get_job_ids()
    sweeps = [job_id for job_id in scheduled if job_id.startswith("ic-outbox-sweep-")]
    assert len(sweeps) == (0 if services.jobs_inline else 1)  # inline jobs strand nothing: no sweep


def test_an_africas_talking_delivery_report_updates_the_row(client, services):
    with services.transaction() as session:
        session.add(
            OutboxMessage(
                idempotency_key="k",
                channel="at-sms",
                recipient="+254700000002",
                text="x",
                status="sent",
                provider_message_id="ATXid_f4b2e0c7d9a1",
            )
        )
    response = client.post(
        "/webhooks/africastalking/delivery",
        data={
            "id": "ATXid_f4b2e0c7d9a1",
            "status": "Failed",
            "phoneNumber": "+254700000002",
            "networkCode": "63902",
            "failureReason": "UserInBlackList",
            "retryCount": "0",
        },
    )
    assert response.status_code == 200
    with services.transaction() as session:
        row = session.scalars(select(OutboxMessage)).one()
        assert row.status == "failed" and "UserInBlackList" in row.error


def test_a_telegram_chat_not_linked_yet_gets_the_share_my_number_button(settings, provider, run_jobs):
    import json

    provider.default = Canned(200, fixture_text("telegram_send_message_ok.json"))
    configured = dataclasses.replace(
        settings, telegram_bot_token="123:abc", telegram_webhook_secret="s", telegram_api_url=provider.base_url + "/bot"
    )
    app = create_app(configured)
    try:
        chat = {"id": 4242, "type": "private"}
        sender = {"id": 4242, "is_bot": False, "first_name": "A"}
        update = {"update_id": 77, "message": {"message_id": 1, "date": 1700000000, "text": "/start", "chat": chat}}
        update["message"]["from"] = sender
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s"}
        assert app.test_client().post("/webhooks/telegram", json=update, headers=headers).status_code == 200
        run_jobs()
        [sent] = [request.form() for request in provider.requests if request.path.endswith("/sendMessage")]
        assert "share your phone number" in sent["text"].lower()
        keyboard = json.loads(sent["reply_markup"])["keyboard"]
        assert keyboard[0][0]["request_contact"] is True and keyboard[0][0]["text"] == "Share my phone number"
    finally:
        app.extensions["services"].dispose()


def test_the_share_my_number_button_speaks_the_welcomes_language(settings, provider, run_jobs):
    import json

    provider.default = Canned(200, fixture_text("telegram_send_message_ok.json"))
    configured = dataclasses.replace(
        settings,
        telegram_bot_token="123:abc",
        telegram_webhook_secret="s",
        telegram_api_url=provider.base_url + "/bot",
        default_locale="sw",
    )
    app = create_app(configured)
    try:
        chat, sender = {"id": 4343, "type": "private"}, {"id": 4343, "is_bot": False, "first_name": "A"}
        update = {"update_id": 78, "message": {"message_id": 1, "date": 1700000000, "text": "/start", "chat": chat}}
        update["message"]["from"] = sender
        app.test_client().post("/webhooks/telegram", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s"})
        run_jobs()
        [sent] = [request.form() for request in provider.requests if request.path.endswith("/sendMessage")]
        button = json.loads(sent["reply_markup"])["keyboard"][0][0]
        assert button == {"text": "Shiriki namba yangu ya simu", "request_contact": True}
    finally:
        app.extensions["services"].dispose()


def test_a_message_whose_retries_run_out_is_marked_failed_with_the_providers_reason(app, settings, provider):
    provider.default = Canned(500, '{"ok": false, "description": "Internal Server Error"}')
    configured = dataclasses.replace(
        settings, telegram_bot_token="123:abc", telegram_api_url=provider.base_url + "/bot"
    )
    services = create_app(configured).extensions["services"]
    services.queue = Queue("default", connection=services.redis)  # a real queue with retries, even when embedded
    try:
        with services.transaction() as session:
            message_id = outbox.queue_message(
                session, services, channel="telegram", recipient="tg:1", text="Habari", idempotency_key="k-exhaust"
            )
        scheduled = ScheduledJobRegistry(queue=services.queue)
        for _ in range(10):  # run each retry at once instead of waiting for its back-off
            SimpleWorker([services.queue], connection=services.redis).work(burst=True, with_scheduler=False)
            for job_id in scheduled.get_job_ids():
                scheduled.remove(job_id)
                services.queue.enqueue_job(Job.fetch(job_id, connection=services.redis))
        assert len(provider.requests) == 7  # the first send and six retries, every one a 500
        with services.transaction() as session:
            row = session.get(OutboxMessage, message_id)
            assert (row.status, row.attempts) == ("failed", 7) and "Internal Server Error" in row.error
        assert scheduled.get_job_ids() == []
    finally:
        services.dispose()


@pytest.mark.parametrize(
    ("per_second", "window"), [(10, (1, 10)), (2.5, (1, 2)), (1, (1, 1)), (0.5, (2, 1)), (0.2, (5, 1))]
)
def test_the_send_rate_is_never_above_sms_per_second(per_second: float, window: tuple[int, int]) -> None:
    from gateway.jobs import send_window

    assert send_window(per_second) == window
    seconds, messages = window
    assert messages / seconds <= per_second


def test_a_late_delivery_report_never_undoes_a_final_status(services) -> None:
    from gateway.jobs import apply_status
    from gateway.messages import DeliveryState, StatusUpdate

    with services.transaction() as session:
        session.add(OutboxMessage(idempotency_key="k-late", channel="twilio-sms", recipient="+254700000002", text="Hi",
                                  status="sent", provider_message_id="SM1"))  # fmt: skip
    report = {state: StatusUpdate("twilio-sms", "SM1", state) for state in DeliveryState}
    assert apply_status(services, [report[DeliveryState.DELIVERED]]) == 1
    assert apply_status(services, [report[DeliveryState.SENT], report[DeliveryState.FAILED]]) == 0  # late, out of order
    with services.transaction() as session:
        assert session.scalars(select(OutboxMessage)).one().status == "delivered"


def test_a_job_finding_its_row_left_sending_by_a_dead_worker_marks_it_unknown(telegram_services, provider):
    from datetime import timedelta

    from sqlalchemy import update

    from db import utcnow

    message_id = _queue_one(telegram_services)
    long_ago = utcnow() - timedelta(seconds=10 * telegram_services.settings.send_timeout_seconds)
    with telegram_services.transaction() as session:  # a worker claimed it, then died mid-send
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(status="sending", updated_at=long_ago)
        )
    assert send_outbound(message_id) == "unknown"
    row = _row(telegram_services, message_id)
    assert row.status == "unknown" and "not resent" in row.error
    assert provider.requests == []


def test_a_pressed_button_is_answered_by_a_job_not_inside_the_webhook(settings, provider):
    provider.default = Canned(200, '{"ok": true, "result": true}')
    configured = dataclasses.replace(
        settings, telegram_bot_token="123:abc", telegram_webhook_secret="s", telegram_api_url=provider.base_url + "/bot"
    )
    app = create_app(configured)
    services = app.extensions["services"]
    services.queue = Queue("default", connection=services.redis)  # asynchronous, even when embedded
    try:
        sender = {"id": 4545, "is_bot": False, "first_name": "A"}
        message = {"message_id": 9, "date": 1700000000, "chat": {"id": 4545, "type": "private"}}
        tap = {"update_id": 80, "callback_query": {"id": "cb-80", "data": "1", "chat_instance": "x", "from": sender}}
        tap["callback_query"]["message"] = message
        headers = {"X-Telegram-Bot-Api-Secret-Token": "s"}

        assert app.test_client().post("/webhooks/telegram", json=tap, headers=headers).status_code == 200
        assert not [request for request in provider.requests if request.path.endswith("/answerCallbackQuery")]

        SimpleWorker([services.queue], connection=services.redis).work(burst=True, with_scheduler=False)
        [answered] = [request.form() for request in provider.requests if request.path.endswith("/answerCallbackQuery")]
        assert answered["callback_query_id"] == "cb-80"
    finally:
        services.dispose()
