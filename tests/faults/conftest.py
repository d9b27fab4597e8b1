"""Fixtures for fault tests: private Redis and PostgreSQL servers on free ports, skipped with a reason when the
binaries are missing. Each fixture stops only the server it started."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.fault_kit import (
    PostgresServer,
    RedisServer,
    migrated,
    postgres_available,
    postgres_bin_dir,
    redis_binary,
)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    binary = redis_binary()
    if binary is None:
        pytest.skip("redis-server is not installed: cannot run a private Redis to stop and restart")
    server = RedisServer(binary)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def _postgres_cluster() -> Iterator[PostgresServer]:
    reason = postgres_available()
    if reason is not None:
        pytest.skip(reason)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    server.init()
    server.start()
    migrated(server.url)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def private_postgres(_postgres_cluster: PostgresServer) -> Iterator[PostgresServer]:
    """The session's private cluster, started again if a test stopped it."""
    yield _postgres_cluster
    try:
        _postgres_cluster.start()
    except Exception:  # noqa: BLE001 - already running
        pass


@pytest.fixture
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return migrated(f"sqlite:///{tmp_path_factory.mktemp('faultdb') / 'fault.sqlite'}")
