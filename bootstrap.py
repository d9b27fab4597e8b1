"""The composition root: turns `Settings` into the process's shared objects.

Web requests, RQ jobs and CLI commands all get their database engine, Redis connection, job queue and channel
adapters from here, so the wiring exists once and nothing is built at import time. Without `REDIS_URL` the process
uses one in-process fakeredis and runs jobs inline: the same code paths, no second implementation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import fakeredis
import redis
from rq import Queue, Retry
from rq.job import Job
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from db import make_engine, make_session_factory
from settings import Settings

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_current: Services | None = None


@dataclass
class Services:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker  # type: ignore[type-arg]
    redis: redis.Redis
    queue: Queue
    _channels: dict[str, Any] | None = field(default=None, repr=False)
    _autocommit_engine: Engine | None = field(default=None, repr=False)

    @property
    def jobs_inline(self) -> bool:
        return not self.settings.redis_url

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: commit on success, roll back on any error."""
        with self.session_factory.begin() as session:
            yield session

    @property
    def autocommit_engine(self) -> Engine:
        """Connections of their own that commit each statement as it runs (no BEGIN and COMMIT round trips), for a
        write that stands alone: a survey hop's draft answer (`conversations.repository.DraftRepository`). A pool
        apart from `engine`'s, because switching a pooled connection to autocommit and back costs more than the
        round trips it saves."""
        if self._autocommit_engine is None:
            self._autocommit_engine = make_engine(
                self.settings.database_url,
                isolation_level="AUTOCOMMIT",
                statement_timeout_ms=self.settings.database_statement_timeout_ms,
                pool_reset_on_return=None,  # no transaction to end: the pool's rollback on check-in is wasted work
            )
        return self._autocommit_engine

    def dispose(self) -> None:
        """Close every pooled database connection of both pools (tests and benchmarks call it between runs)."""
        self.engine.dispose()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()

    @contextmanager
    def lazy_transaction(self) -> Iterator[Session]:
        """`transaction`, begun by the first statement rather than up front: a unit of work that runs no statement
        costs no round trip, and `Session.in_transaction()` tells whether anything ran yet (see
        `conversations.repository.DraftRepository.save_answer`)."""
        with self.session_factory() as session:
            yield session
            if session.in_transaction():  # nothing ran: nothing to commit (an empty commit costs a survey hop)
                session.commit()

    @property
    def channels(self) -> dict[str, Any]:
        if self._channels is None:
            from gateway.channels import build_channels

            self._channels = build_channels(channel_config(self.settings))
        return self._channels

    def enqueue(
        self, func: Callable[..., Any], *args: Any, job_id: str | None = None, retry: Retry | None = None, **kw: Any
    ) -> Any:
        """Queue a job; inline (run now, in this process) on the embedded default."""
        return self.queue.enqueue(func, *args, job_id=job_id, retry=retry, **kw)

    def has_job(self, job_id: str) -> bool:
        """Whether RQ holds a job with this id (queued, scheduled or waiting for a retry)."""
        return bool(Job.exists(job_id, connection=self.redis))

    def schedule_once(self, when: datetime, func: Callable[..., Any], *, job_id: str) -> None:
        """Run `func` at `when` unless a job with `job_id` exists already, so two workers starting do not double
        it. Needs the scheduler: callers skip it when jobs run inline."""
        if not self.has_job(job_id):
            self.queue.enqueue_at(when, func, job_id=job_id)

    def readiness(self) -> dict[str, str]:
        """Check each backing service; returns {name: "ok" | reason}."""
        status: dict[str, str] = {}
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            status["database"] = "ok"
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"; the reason is reported
            status["database"] = f"unreachable: {type(exc).__name__}"
        try:
            self.redis.ping()
            status["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            status["redis"] = f"unreachable: {type(exc).__name__}"
        return status


def channel_config(settings: Settings) -> Any:
    from gateway.channels import ChannelConfig

    return ChannelConfig(
        at_username=settings.at_username,
        at_api_key=settings.at_api_key,
        at_webhook_token=settings.at_webhook_token,
        at_sender_id=settings.at_sender_id,
        twilio_account_sid=settings.twilio_account_sid,
        twilio_auth_token=settings.twilio_auth_token,
        twilio_from_number=settings.twilio_from_number,
        twilio_public_url=settings.twilio_public_url,
        telegram_bot_token=settings.telegram_bot_token,
        telegram_webhook_secret=settings.telegram_webhook_secret,
        telegram_base_url=settings.telegram_api_url,
        send_timeout_seconds=settings.send_timeout_seconds,
    )


def build(settings: Settings) -> Services:
    """Build the services for `settings` and make them the process's current ones."""
    global _current
    engine = make_engine(settings.database_url, statement_timeout_ms=settings.database_statement_timeout_ms)
    if settings.redis_url:
        connection: redis.Redis = redis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=30
        )
        queue = Queue("default", connection=connection)
    else:
        connection = fakeredis.FakeRedis()
        queue = Queue("default", connection=connection, is_async=False)
    services = Services(settings, engine, make_session_factory(engine), connection, queue)
    with _lock:
        _current = services
    return services


def current() -> Services:
    """The services of this process: those built last, or built now from the environment (RQ workers)."""
    global _current
    with _lock:
        existing = _current
    if existing is not None:
        return existing
    return build(Settings.from_env())
