"""Property-based contract test: schemathesis drives the Flask app in-process (WSGI) from our own OpenAPI document
with an admin key and with a lender key, and fails on any 5xx or any response the document does not describe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api import keys
from app import create_app
from bootstrap import Services
from consent import service as consent
from settings import Settings
from surveys import service as surveys
from tests.factories import NOW, configure_ppi, make_client, make_office, make_staff

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api_app(app: Flask, settings: Settings) -> Iterator[Flask]:
    """A second app on the emptied database (the `app` fixture cleans it), with a limit high enough for fuzzing."""
    fuzzed = create_app(replace(settings, rate_limit_per_key_per_minute=1_000_000))
    services: Services = fuzzed.extensions["services"]
    with services.transaction() as session:
        branch = make_office(session, external_id="B1", name="Branch one")
        make_staff(session, external_id="S001", office=branch)
        client = make_client(session, external_id="C1", name="Amina Otieno", office=branch)
        consent.record(session, client.id, granted=True, text_version="v1", language="en", channel="at-ussd", now=NOW)
        configure_ppi(session, bands="0-29:Very poor,30-59:Poor,60-100:Better off")
        surveys.create_survey(
            session,
            client.id,
            [1] * 10,
            date_collected=date(2024, 5, 2),
            mode="self",
            channel="cli",
            officer_id=None,
            now=NOW,
        )
    yield fuzzed
    services.dispose()


@pytest.fixture
def api_schema(api_app: Flask):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", api_app)


schema = schemathesis.pytest.from_fixture("api_schema")


def _key(api_app: Flask, scope: str) -> str:
    services: Services = api_app.extensions["services"]
    with services.transaction() as session:
        _, key = keys.create_key(session, scope=scope, now=NOW)
    return key


@pytest.fixture
def admin_key(api_app: Flask) -> str:
    return _key(api_app, "admin")


@pytest.fixture
def lender_key(api_app: Flask) -> str:
    return _key(api_app, "lender")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_document_for_an_admin(case, admin_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {admin_key}"}, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_matches_its_document_for_a_lender(case, lender_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {lender_key}"}, checks=CHECKS)
