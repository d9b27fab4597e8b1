"""Pooled PostgreSQL connections: no ping on a busy connection, and a connection the server dropped while it sat
idle is replaced before a hop uses it, so the caller never sees the drop."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.pool import NullPool

import db
from bootstrap import Services
from tests.conftest import TEST_DATABASE_URL

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not TEST_DATABASE_URL, reason="a server that drops connections needs TEST_DATABASE_URL"),
]


def _backend_pid(services: Services) -> int:
    with services.engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_dropped_while_idle_is_replaced_before_use(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.dispose()
    first = _backend_pid(services)  # the pool now holds this one connection, idle
    outside = create_engine(services.engine.url, poolclass=NullPool)  # a connection of its own, not the pool's
    with outside.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)
    with services.transaction() as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
    assert _backend_pid(services) != first


def test_a_connection_in_steady_use_is_not_pinged(services: Services) -> None:
    statements: list[str] = []
    event.listen(services.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    services.dispose()
    for _ in range(3):
        with services.transaction() as session:
            session.execute(text("SELECT 42"))
    assert statements == ["SELECT 42"] * 3
