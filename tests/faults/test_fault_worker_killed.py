"""A worker is SIGKILLed while the provider is still answering its request: RQ later finds the job abandoned and
retries it, and the retry does not send again (the provider may already have the message), so the fake provider
sees at most one request per message and the row ends `unknown` for an operator to check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from rq.job import Job
from sqlalchemy import update

from bootstrap import Services
from db import utcnow
from gateway import outbox
from gateway.models import OutboxMessage
from tests.faults.fault_kit import PostgresServer, RedisServer, build_app

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SEND_OK = b'{"ok": true, "result": {"message_id": 7, "date": 1744623067, "chat": {"id": 5550001234, "type": "p"}}}'
WAIT_SECONDS = 30


class BlockingTelegram:
    """A loopback Bot API that never answers the first request and accepts every later one."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.release = threading.Event()
        self.base_url = ""

    def answer(self, path: str) -> bytes:
        self.requests.append(path)
        if len(self.requests) == 1:
            self.release.wait(timeout=WAIT_SECONDS)
        return SEND_OK


@pytest.fixture
def provider() -> Iterator[BlockingTelegram]:
    fake = BlockingTelegram()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server naming
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = fake.answer(self.path)
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:
                pass  # the worker that asked is dead

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.base_url = f"http://127.0.0.1:{server.server_address[1]}/bot"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    yield fake
    fake.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def app_on_private_servers(private_postgres: PostgresServer, private_redis: RedisServer) -> Iterator[Flask]:
    application = build_app(private_postgres.url, private_redis.url)
    yield application
    application.extensions["services"].dispose()


def _start_worker(
    private_postgres: PostgresServer, private_redis: RedisServer, provider: BlockingTelegram, *, burst: bool
) -> subprocess.Popen[bytes]:
    environment = dict(
        os.environ,
        FAULT_DATABASE_URL=private_postgres.url,
        FAULT_REDIS_URL=private_redis.url,
        FAULT_TELEGRAM_URL=provider.base_url,
        FAULT_BURST="1" if burst else "0",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "tests.faults.worker_entry"],
        cwd=PROJECT_ROOT,
        env=environment,
        start_new_session=True,  # its own process group: the worker and its work-horse die together
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _status(services: Services, message_id: int) -> str:
    with services.transaction() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None
        return row.status


def test_a_worker_killed_mid_send_is_not_followed_by_a_second_send(
    app_on_private_servers, private_postgres, private_redis, provider
):
    services: Services = app_on_private_servers.extensions["services"]
    with services.transaction() as session:
        message_id = outbox.queue_message(
            session, services, channel="telegram", recipient="tg:5550001234", text="Reminder", idempotency_key="once"
        )
    worker = _start_worker(private_postgres, private_redis, provider, burst=False)
    try:
        _wait_for(lambda: len(provider.requests) == 1, "the worker to reach the provider")
        assert _status(services, message_id) == "sending"
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=WAIT_SECONDS)

    # Later (minutes: the worker's heartbeat TTL), RQ notices the job was abandoned and schedules a retry. The row's
    # claim is by then older than any send could take, which is what tells the retry the first send was cut off.
    with services.transaction() as session:
        session.execute(
            update(OutboxMessage).where(OutboxMessage.id == message_id).values(updated_at=utcnow() - timedelta(hours=1))
        )
    queue = services.queue
    queue.started_job_registry.cleanup(timestamp=time.time() + 24 * 3600)
    for job_id in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(job_id)
        queue.enqueue_job(Job.fetch(job_id, connection=services.redis))
    job = Job.fetch(f"outbox-{message_id}", connection=services.redis)
    assert job.get_status() == "queued"  # retried, not left for dead

    second = _start_worker(private_postgres, private_redis, provider, burst=True)
    assert second.wait(timeout=WAIT_SECONDS) == 0
    assert len(provider.requests) == 1  # never sent twice
    assert _status(services, message_id) == "unknown"
    with services.transaction() as session:
        row = session.get(OutboxMessage, message_id)
        assert row is not None and row.attempts == 1 and "not resent" in (row.error or "")
