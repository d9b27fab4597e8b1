"""Shared fixtures: settings, app, client, runner and services on the embedded defaults, or on real PostgreSQL
and Redis when TEST_DATABASE_URL / TEST_REDIS_URL are set (CI runs the suite both ways).

The schema is created once per session with the real Alembic migrations; every test starts from empty tables.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import text

import db
import migrate
from app import create_app
from bootstrap import Services
from settings import Settings

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL") or None
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or None


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.sqlite'}"
    migrate.upgrade(Settings(app_env="test", database_url=url))
    return url


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(app_env="test", database_url=database_url, redis_url=TEST_REDIS_URL, log_level="DEBUG")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    services: Services = application.extensions["services"]
    _empty_all_tables(services)
    services.redis.flushdb()
    yield application
    services.redis.flushdb()
    services.dispose()


@pytest.fixture
def services(app: Flask) -> Services:
    return app.extensions["services"]  # type: ignore[no-any-return]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def run_jobs(services: Services):  # type: ignore[no-untyped-def]
    """Run queued jobs: a no-op on the embedded default (jobs ran inline), a burst worker on real Redis."""

    def run() -> None:
        if services.jobs_inline:
            return
        from rq import SimpleWorker

        SimpleWorker([services.queue], connection=services.redis).work(burst=True, with_scheduler=False)

    return run


@pytest.fixture
def survey_client(services: Services) -> int:
    """KEN-2024 active with the standard bands shown to clients, and Jane (C0002, English) on CLIENT_PHONE."""
    from tests.factories import CLIENT_PHONE, STANDARD_BANDS, configure_ppi, make_client

    with services.transaction() as session:
        configure_ppi(session, bands=STANDARD_BANDS, show_band_to_client=True)
        client = make_client(session, external_id="C0002", name="Jane Wanjiru", phones=[CLIENT_PHONE], language="en")
        return client.id


@pytest.fixture
def officer_phone(services: Services) -> str:
    """Loan officer S001 registered on OFFICER_PHONE."""
    from tests.factories import OFFICER_PHONE, make_staff

    with services.transaction() as session:
        make_staff(session, external_id="S001", phone=OFFICER_PHONE)
    return OFFICER_PHONE


def _empty_all_tables(services: Services) -> None:
    db.import_all_models()
    with services.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # The consent ledger's append-only trigger must not stop test clean-up.
            connection.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(db.Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any httpx request to a non-loopback host, so no test can text a real phone."""
    import httpx

    original = httpx.HTTPTransport.handle_request

    def guarded(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise RuntimeError(f"test tried to reach the network: {host}")
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", guarded)
