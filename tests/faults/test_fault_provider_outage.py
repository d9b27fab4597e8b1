"""The SMS/Telegram provider is down for over an hour: the outbox keeps retrying with RQ's back-off and, when the
provider is back, delivers every message exactly once.

The provider is a loopback HTTP fake that answers 502 while "down". Time travels by moving the jobs RQ scheduled
for later into the queue (what the RQ scheduler does when their time comes), while recording each delay.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from flask import Flask
from rq import Queue, SimpleWorker
from rq.job import Job
from sqlalchemy import select

from bootstrap import Services
from gateway import outbox
from gateway.channels import ChannelConfig, build_channels
from gateway.models import OutboxMessage
from tests.faults.fault_kit import RedisServer, build_app

pytestmark = [pytest.mark.redis]

SEND_OK = {"ok": True, "result": {"message_id": 7, "date": 1744623067, "chat": {"id": 5550001234, "type": "private"}}}
CHATS = ("tg:5550001234", "tg:5550001235", "tg:5550001236")


@dataclass
class FlakyTelegram:
    """A loopback Bot API: answers 502 while `down`, then accepts; records every request body."""

    down: bool = True
    accepted: list[dict[str, Any]] = field(default_factory=list)
    refused: int = 0
    base_url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, body: bytes) -> tuple[int, bytes]:
        with self.lock:
            if self.down:
                self.refused += 1
                return 502, b"Bad Gateway"
            self.accepted.append(_decoded(body))
            return 200, json.dumps(SEND_OK).encode()


def _decoded(body: bytes) -> dict[str, Any]:
    """PTB posts form-encoded fields (JSON for some calls)."""
    try:
        return dict(json.loads(body))
    except ValueError:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))


@pytest.fixture
def provider() -> Iterator[FlakyTelegram]:
    fake = FlakyTelegram()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            status, payload = fake.answer(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/bot"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def app_with_provider(sqlite_url: str, private_redis: RedisServer, provider: FlakyTelegram) -> Iterator[Flask]:
    application = build_app(sqlite_url, private_redis.url, sms_per_second=1000.0)
    services: Services = application.extensions["services"]
    config = ChannelConfig(telegram_bot_token="123456:TEST", telegram_base_url=provider.base_url)
    services._channels = build_channels(config)  # the worker below runs in this process, on these services
    yield application
    services.dispose()


def _run_worker(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True, with_scheduler=False)


def _time_travel_to_next_retries(queue: Queue) -> list[float]:
    """Enqueue every job RQ scheduled for later; returns how long each would have waited, in seconds."""
    registry = queue.scheduled_job_registry
    job_ids = registry.get_job_ids()
    now = datetime.now(UTC)
    delays = [(registry.get_scheduled_time(job_id) - now).total_seconds() for job_id in job_ids]
    for job_id in job_ids:
        registry.remove(job_id)
        queue.enqueue_job(Job.fetch(job_id, connection=queue.connection))
    return delays


def test_the_outbox_delivers_everything_once_after_a_provider_outage_of_over_an_hour(app_with_provider, provider):
    services: Services = app_with_provider.extensions["services"]
    with services.transaction() as session:
        for index, chat in enumerate(CHATS):
            outbox.queue_message(
                session,
                services,
                channel="telegram",
                recipient=chat,
                text=f"Reminder {index}",
                idempotency_key=f"k{index}",
            )
    waited: list[float] = []
    for _ in range(6):  # six failed attempts per message, each followed by RQ's back-off
        _run_worker(services.queue)
        delays = _time_travel_to_next_retries(services.queue)
        assert len(delays) == len(CHATS)
        waited.append(min(delays))
    assert provider.refused == 6 * len(CHATS) and not provider.accepted
    assert sum(waited) > 3600 - 60  # the provider has been down for over an hour
    with services.transaction() as session:
        assert {row.status for row in session.scalars(select(OutboxMessage))} == {"queued"}

    provider.down = False
    _run_worker(services.queue)

    assert sorted(request["text"] for request in provider.accepted) == ["Reminder 0", "Reminder 1", "Reminder 2"]
    with services.transaction() as session:
        rows = session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        assert [(row.status, row.attempts) for row in rows] == [("sent", 7)] * len(CHATS)
    assert not services.queue.scheduled_job_registry.get_job_ids()
    _run_worker(services.queue)  # nothing left to run: no duplicate
    assert len(provider.accepted) == len(CHATS)
