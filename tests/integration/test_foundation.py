"""The service starts, reports its health, and refuses unsafe production settings."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Response

import db
import migrate
from app import create_app
from settings import Settings, SettingsError


def test_healthz_is_ok_when_the_process_is_up(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}


def test_readyz_is_green_when_database_and_redis_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(tmp_path):
    unreachable = Settings(app_env="test", database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    response = create_app(unreachable).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["database"].startswith("unreachable")


def test_readyz_is_503_when_redis_is_unreachable(settings):
    broken = Settings(app_env="test", database_url=settings.database_url, redis_url="redis://127.0.0.1:1/0")
    response = create_app(broken).test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"].startswith("unreachable")


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"APP_ENV": "production"}, "SQLite"),
        ({"APP_ENV": "production", "DATABASE_URL": "postgresql+psycopg://db/x"}, "REDIS_URL is unset"),
        (
            {"APP_ENV": "production", "DATABASE_URL": "postgresql+psycopg://db/x", "REDIS_URL": "redis://r"},
            "SECRET_KEY is unset",
        ),
        (
            {"APP_ENV": "production", "DATABASE_URL": "postgresql+psycopg://db/x", "REDIS_URL": "redis://r"}
            | {"SECRET_KEY": "   "},
            "SECRET_KEY is unset",
        ),
    ],
)
def test_production_refuses_development_defaults_and_says_which(environ, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_settings_reject_a_malformed_number_naming_the_variable():
    with pytest.raises(SettingsError, match="PIN_MAX_ATTEMPTS"):
        Settings.from_env({"PIN_MAX_ATTEMPTS": "three"})


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"SUPPRESSION_K": "1"}, "SUPPRESSION_K must be at least 2, not 1"),
        ({"SUPPRESSION_K": "-3"}, "SUPPRESSION_K must be at least 2, not -3"),
        ({"PORTAL_URL": "https://portal.example.org/feed"}, "PORTAL_URL is set without PORTAL_SECRET"),
        ({"PROXY_HOPS": "9"}, "PROXY_HOPS must be 0 to 5"),
        ({"BAD_API_KEYS_PER_ADDRESS_PER_MINUTE": "0"}, "BAD_API_KEYS_PER_ADDRESS_PER_MINUTE must be at least 1"),
        ({"FINERACT_BREAKER_FAILURES": "0"}, "FINERACT_BREAKER_FAILURES and FINERACT_BREAKER_SECONDS must be at"),
        ({"FINERACT_BREAKER_SECONDS": "0"}, "FINERACT_BREAKER_FAILURES and FINERACT_BREAKER_SECONDS must be at"),
    ],
)
def test_settings_that_would_switch_a_protection_off_are_refused(environ, named):
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(environ)


def test_menu_off_names_an_unknown_entry_and_lists_the_known_ones():
    with pytest.raises(SettingsError, match=r"MENU_OFF has unknown menu entries balance; known: balances, "):
        Settings.from_env({"MENU_OFF": "survey,balance"})
    assert Settings.from_env({"MENU_OFF": " Balances, statement ,"}).menu_off_names == ("balances", "statement")


def test_pages_send_security_headers(client):
    headers = client.get("/healthz").headers
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"


def test_a_views_own_security_header_is_kept_and_the_others_added(app):
    @app.get("/own-frame-policy")
    def own_frame_policy():
        return Response("framed", headers={"x-frame-options": "SAMEORIGIN"})

    headers = app.test_client().get("/own-frame-policy").headers
    assert headers.getlist("X-Frame-Options") == ["SAMEORIGIN"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"


def test_migrations_and_models_agree(services):
    db.import_all_models()
    with services.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"include_name": migrate.include_name})
        differences = compare_metadata(context, db.Base.metadata)
    assert differences == []


def test_env_example_lists_every_setting_and_nothing_else():
    from dataclasses import fields
    from pathlib import Path

    listed = {
        line.split("=", 1)[0]
        for line in (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert listed == {spec.name.upper() for spec in fields(Settings)}
