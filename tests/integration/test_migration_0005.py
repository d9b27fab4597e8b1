"""Deploying the profile sums onto a database with feed facts (migration 0005): every profile is marked, the first
reader of the aggregates computes the sums and sees what it saw before; the migration can be taken back and applied
again. On a database of its own (SQLite file, or a scratch PostgreSQL database when CI runs against PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

import migrate
from db import make_engine, make_session_factory
from feeds.aggregates import compute
from feeds.facts import rebuild_facts
from feeds.models import feed_profile_dirty
from settings import Settings
from tests.conftest import TEST_DATABASE_URL
from tests.factories import STANDARD_BANDS, configure_ppi, make_client, make_office
from tests.integration.test_feed_facts import survey


@pytest.fixture
def database_at_0004(tmp_path: Path) -> Iterator[str]:
    if TEST_DATABASE_URL is None:
        url = f"sqlite:///{tmp_path / 'migration.sqlite'}"
        migrate.upgrade(Settings(app_env="test", database_url=url), "0004")
        yield url
        return
    server = make_url(TEST_DATABASE_URL)
    scratch = f"{server.database}_migration_0005"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}"'))
        connection.execute(text(f'CREATE DATABASE "{scratch}"'))
    url = server.set(database=scratch).render_as_string(hide_password=False)
    migrate.upgrade(Settings(app_env="test", database_url=url), "0004")
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
    admin.dispose()


def test_0005_marks_every_profile_and_the_first_reader_computes_the_sums(database_at_0004: str) -> None:
    engine = make_engine(database_at_0004)
    factory = make_session_factory(engine)
    with factory.begin() as session:  # data and facts as the previous release left them
        configure_ppi(session, bands=STANDARD_BANDS)
        branch = make_office(session, level="branch")
        for _ in range(3):
            survey(session, make_client(session, office=branch).id, date(2024, 5, 1))
        rebuild_facts(session, with_sums=False)
    settings = Settings(app_env="test", database_url=database_at_0004)

    migrate.upgrade(settings)
    with factory.begin() as session:
        assert session.scalar(select(func.count()).select_from(feed_profile_dirty)) == 1
        [cell] = compute(session, level="branch", period_kind="year", k=1)
        assert cell.clients == 3
        assert session.scalar(select(func.count()).select_from(feed_profile_dirty)) == 0

    migrate.downgrade(settings, "0004")
    assert "feed_profile_sums" not in inspect(engine).get_table_names()
    migrate.upgrade(settings)
    with factory.begin() as session:
        [cell] = compute(session, level="branch", period_kind="year", k=1)
        assert cell.clients == 3
    engine.dispose()
