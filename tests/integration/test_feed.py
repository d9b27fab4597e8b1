"""The impact-portal feed: the document against its schema, signed delivery to a real HTTP receiver on loopback with
retries and dead-lettering, the CLI, the schedule, and the /impact page."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select

from api.keys import create_key
from bootstrap import Services
from feeds import cli as feed_cli
from feeds import delivery, document, jobs, schedule, signing
from feeds.facts import rebuild_facts
from feeds.models import FeedDelivery
from settings import Settings
from surveys.models import PpiSettings, SurveyLineResult, SurveyResponse
from tests.conftest import TEST_REDIS_URL
from tests.factories import make_client, make_office, make_staff

SECRET, PREVIOUS_SECRET = "portal-secret-now", "portal-secret-before"
T0 = datetime(2026, 5, 10, 8, 0, tzinfo=UTC)


@dataclass
class Receiver:
    """A portal stand-in: verifies every request with `feeds.signing.verify`, fails the first `failures` ones."""

    url: str = ""
    failures: int = 0
    requests: list[dict] = field(default_factory=list)
    accepted: dict[str, bytes] = field(default_factory=dict)  # idempotency key -> body, stored once
    clock: datetime = T0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            valid = signing.verify(self.headers, body, [SECRET, PREVIOUS_SECRET], state.clock)
            key = self.headers.get(signing.IDEMPOTENCY_HEADER, "")
            state.requests.append({"valid": valid, "key": key})
            if not valid:
                self._answer(401)
            elif len(state.requests) <= state.failures:
                self._answer(503)
            else:
                state.accepted.setdefault(key, body)
                self._answer(200)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/feed"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def settings(database_url: str, receiver: Receiver) -> Settings:
    return Settings(
        app_env="test",
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        portal_url=receiver.url,
        portal_secret=SECRET,
        portal_secret_previous=PREVIOUS_SECRET,
        feed_max_attempts=3,
        suppression_k=3,
    )


def _seed(services: Services, first: date = date(2025, 11, 3), second: date = date(2026, 4, 2)) -> None:
    """A branch with 4 surveyed clients (shown) and two with 1 and 2 (withheld: under k, and together k, so the
    country less Nairobi does not give either away), surveyed on two dates; one officer has them all."""
    with services.transaction() as session:
        session.add(PpiSettings(scorecard_id="KEN-2024", headline_line="national", bands=None))
        country = make_office(session, external_id="KE", level="country")
        big = make_office(session, external_id="NBO", name="Nairobi", level="branch", parent=country)
        small = make_office(session, external_id="KSM", name="Kisumu", level="branch", parent=country)
        smaller = make_office(session, external_id="MSA", name="Mombasa", level="branch", parent=country)
        officer = make_staff(session, office=big)
        for number, office in enumerate([big, big, big, big, small, smaller, smaller]):
            client = make_client(session, office=office, officer=officer)
            for collected, band, score, rate in (
                (date(2025, 11, 3), "Poor", 30, 0.6),
                (date(2026, 4, 2), "Better", 55, 0.3),
            ):
                survey = SurveyResponse(
                    client_id=client.id,
                    scorecard_id="KEN-2024",
                    date_collected=collected,
                    mode="self",
                    channel="cli",
                    headline_score=score + number,
                    band=band,
                )
                session.add(survey)
                session.flush()
                session.add(SurveyLineResult(survey_id=survey.id, line_slug="national", score=score, likelihood=rate))
        session.flush()
        rebuild_facts(session)  # the surveys were written by hand, not through the survey service


def test_the_feed_document_validates_against_its_json_schema(services: Services) -> None:
    _seed(services)
    with services.transaction() as session:
        feed = document.build(session, settings=services.settings, now=T0)
        body = document.build_body(session, settings=services.settings, now=T0)
    assert document.to_body(feed) == body  # the text is made in canonical form: sorted keys, no spaces
    jsonschema.validate(feed, document.schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    assert feed["periods"][0] == "2024-Q3" and feed["periods"][-1] == "2026-Q2"
    branches = next(level for level in feed["levels"] if level["level"] == "branch")["groups"]
    nairobi = next(group for group in branches if group["id"] == "NBO")
    latest = nairobi["series"][-1]
    assert (latest["period"], latest["clients"], latest["poverty_rate"]) == ("2026-Q2", 4, {"national": 0.3})
    assert latest["band_transitions"]["from_previous_period"] == []  # 2025-Q4 is not the quarter before 2026-Q2
    assert latest["band_transitions"]["since_first_survey"] == [{"from": "Poor", "to": "Better", "clients": 4}]
    kisumu = next(group for group in branches if group["id"] == "KSM")
    assert kisumu["series"] == [{"period": "2025-Q4", "suppressed": True}, {"period": "2026-Q2", "suppressed": True}]
    mombasa = next(group for group in branches if group["id"] == "MSA")
    assert all(point["suppressed"] for point in mombasa["series"])
    assert feed["suppression"] == {"k": 3, "cells_withheld": 4}


def test_signature_checks_reject_stale_tampered_and_unknown_secrets() -> None:
    body = b'{"feed_version":"1.0"}'
    headers = signing.signed_headers(body, SECRET, now=T0, idempotency_key="k1")
    assert signing.verify(headers, body, [SECRET], T0 + timedelta(seconds=299))
    assert not signing.verify(headers, body, [SECRET], T0 + timedelta(seconds=301))
    assert not signing.verify(headers, body, [SECRET], T0 - timedelta(seconds=301))
    assert not signing.verify(headers, body + b" ", [SECRET], T0)
    assert not signing.verify(headers, body, ["another", ""], T0)
    rotated = signing.signed_headers(body, PREVIOUS_SECRET, now=T0, idempotency_key="k1")
    assert signing.verify(rotated, body, [SECRET, PREVIOUS_SECRET], T0)
    assert not signing.verify({"X-Timestamp": "soon", "X-Signature": "sha256=00"}, body, [SECRET], T0)


def _attempt_due(services: Services, receiver: Receiver, at: datetime) -> list[str]:
    receiver.clock = at
    return [outcome.status for outcome in jobs.retry_due(services, now=at)]


def test_a_delivery_that_fails_twice_is_retried_with_backoff_and_delivered_exactly_once(
    services: Services, receiver: Receiver, run_jobs
) -> None:
    _seed(services)
    receiver.failures = 2
    delivery_id, first = jobs.push_with(services, now=T0)
    assert (first.status, first.retry_in) == ("pending", timedelta(minutes=1))
    assert _attempt_due(services, receiver, T0 + timedelta(seconds=30)) == []  # not due yet: no request
    assert _attempt_due(services, receiver, T0 + timedelta(minutes=1)) == ["pending"]  # second failure, waits 2 min
    assert _attempt_due(services, receiver, T0 + timedelta(minutes=2)) == []
    assert _attempt_due(services, receiver, T0 + timedelta(minutes=3)) == ["delivered"]
    assert jobs.deliver_with(services, delivery_id, now=T0 + timedelta(days=1)).status == "skipped"
    assert _attempt_due(services, receiver, T0 + timedelta(days=2)) == []

    assert len(receiver.requests) == 3 and all(request["valid"] for request in receiver.requests)
    assert len({request["key"] for request in receiver.requests}) == 1
    assert len(receiver.accepted) == 1
    with services.transaction() as session:
        row = session.get(FeedDelivery, delivery_id)
        assert (row.status, row.attempts, json.loads(row.body)["mfi_id"]) == ("delivered", 3, "demo-mfi")
    if not services.jobs_inline:  # a real queue also got the retries scheduled with enqueue_in
        from rq.registry import ScheduledJobRegistry

        assert len(ScheduledJobRegistry(queue=services.queue)) == 2
        services.enqueue(jobs.deliver, delivery_id)
        run_jobs()
        assert len(receiver.requests) == 3


def test_a_job_that_runs_twice_at_once_sends_once(services: Services, receiver: Receiver) -> None:
    with services.transaction() as session:
        delivery_id = delivery.create(session, "{}", now=T0).id
    with services.transaction() as session:
        first = delivery.claim(session, delivery_id, now=T0)
    with services.transaction() as session:
        second = delivery.claim(session, delivery_id, now=T0)
    assert first is not None and first.attempt == 1
    assert second is None


def test_after_max_attempts_the_delivery_is_dead_and_replay_resends_with_the_same_key(
    app: Flask, services: Services, receiver: Receiver, runner: FlaskCliRunner
) -> None:
    receiver.failures = 3
    delivery_id, outcome = jobs.push_with(services, now=T0)
    statuses = [outcome.status]
    statuses += _attempt_due(services, receiver, T0 + timedelta(minutes=1))
    statuses += _attempt_due(services, receiver, T0 + timedelta(minutes=3))
    statuses += _attempt_due(services, receiver, T0 + timedelta(days=3))
    assert statuses == ["pending", "pending", "dead"]
    assert len(receiver.requests) == 3

    receiver.clock = datetime.now(UTC)
    result = runner.invoke(feed_cli.replay_command, [str(delivery_id)])
    assert result.exit_code == 0, result.output
    assert f"delivery {delivery_id}: delivered" in result.output
    assert [request["key"] for request in receiver.requests].count(receiver.requests[0]["key"]) == 4
    listing = runner.invoke(feed_cli.status_command, [])
    assert re.search(rf"{delivery_id}\s+delivered\s+attempts=1", listing.output)


def test_a_replayed_delivery_that_fails_is_listed_with_its_next_attempt_not_its_old_delivery(
    app: Flask, services: Services, receiver: Receiver, runner: FlaskCliRunner
) -> None:
    delivery_id, outcome = jobs.push_with(services, now=T0)
    assert outcome.status == "delivered"
    receiver.failures = 2  # the first request (delivered above) counts: the replay fails
    receiver.clock = datetime.now(UTC)
    result = runner.invoke(feed_cli.replay_command, [str(delivery_id)])
    assert f"delivery {delivery_id}: pending" in result.output
    listing = runner.invoke(feed_cli.status_command, []).output
    assert re.search(rf"{delivery_id}\s+pending\s+attempts=1 .* next attempt=", listing)
    assert "delivered=" not in listing


def test_feed_push_builds_and_delivers_now(services: Services, receiver: Receiver, runner: FlaskCliRunner) -> None:
    _seed(services)
    receiver.clock = datetime.now(UTC)
    result = runner.invoke(feed_cli.push_command, [])
    assert result.exit_code == 0, result.output
    [body] = receiver.accepted.values()
    assert json.loads(body)["suppression"]["k"] == 3


def test_daily_run_and_debounced_rebuild_need_a_scheduler(services: Services) -> None:
    if services.jobs_inline:
        assert schedule.ensure_daily(services, now=T0) is None
        assert schedule.survey_changed(services) is False
        return
    from rq.registry import ScheduledJobRegistry

    assert schedule.ensure_daily(services, now=T0) == datetime(2026, 5, 11, 2, 0, tzinfo=UTC)
    assert schedule.ensure_daily(services, now=T0 + timedelta(hours=1)) == datetime(2026, 5, 11, 2, 0, tzinfo=UTC)
    assert [schedule.survey_changed(services) for _ in range(3)] == [True, False, False]
    assert len(ScheduledJobRegistry(queue=services.queue)) == 3  # one daily run, one rebuild, one facts catch-up


def test_next_daily_run_is_the_next_two_oclock_utc() -> None:
    assert schedule.next_daily_run(datetime(2026, 5, 10, 1, 59, tzinfo=UTC)) == datetime(2026, 5, 10, 2, tzinfo=UTC)
    assert schedule.next_daily_run(datetime(2026, 5, 10, 2, 0, tzinfo=UTC)) == datetime(2026, 5, 11, 2, tzinfo=UTC)


def test_backoff_doubles_from_one_minute_up_to_a_day() -> None:
    assert [delivery.backoff(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (1, 2, 4)]
    assert delivery.backoff(40) == timedelta(hours=24)


# --- /impact ---------------------------------------------------------------------------------------------------


def _key(services: Services, scope: str) -> str:
    with services.transaction() as session:
        _, plaintext = create_key(session, scope=scope, now=T0)
    return plaintext


def _csrf(page: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, page
    return match.group(1)


def _sign_in(client: FlaskClient, key: str) -> object:
    form = client.get("/impact").get_data(as_text=True)
    return client.post("/impact/sign-in", data={"csrf_token": _csrf(form), "api_key": key})


def test_the_impact_page_asks_for_an_admin_key_and_then_shows_tables_and_charts(
    services: Services, client: FlaskClient
) -> None:
    today = datetime.now(UTC).date()
    _seed(services, first=today - timedelta(days=200), second=today)  # the page shows periods up to today
    assert "api_key" in client.get("/impact").get_data(as_text=True)
    response = _sign_in(client, _key(services, "admin"))
    assert response.status_code == 302
    page = client.get("/impact?period_kind=quarter").get_data(as_text=True)
    assert "Nairobi" in page and "<svg" in page and "withheld" in page
    assert "30.0%" in page  # Nairobi's poverty rate in 2026-Q2


def test_the_impact_page_speaks_the_chosen_language_and_remembers_it(services: Services, client: FlaskClient) -> None:
    today = datetime.now(UTC).date()
    _seed(services, first=today - timedelta(days=200), second=today)
    assert "Connectez-vous avec une clé API" in client.get("/impact?lang=fr").get_data(as_text=True)
    _sign_in(client, _key(services, "admin"))
    french = client.get("/impact?period_kind=quarter").get_data(as_text=True)  # chosen before signing in
    assert '<html lang="fr" dir="ltr">' in french
    assert "Taux de pauvreté dans le temps" in french and "Par trimestre" in french and "Par agence" in french
    assert "30.0%" in french and "Nairobi" in french  # numbers and names are data
    assert "Taux de pauvreté dans le temps" in client.get("/impact").get_data(as_text=True)  # kept in the session
    arabic = client.get("/impact?lang=ar").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl">' in arabic and "معدل الفقر عبر الزمن" in arabic
    assert "معدل الفقر عبر الزمن" in client.get("/impact?lang=xx").get_data(as_text=True)  # unknown: kept Arabic


def test_the_impact_sign_in_follows_the_browser_language_until_one_is_chosen(client: FlaskClient) -> None:
    page = client.get("/impact", headers={"Accept-Language": "sw-KE,sw;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert "Ingia kwa ufunguo wa API wa msimamizi" in page and "<code>impact-connect apikeys create" in page
    assert "Sign in with an admin API key" in client.get("/impact?lang=en").get_data(as_text=True)
    refused = client.post(
        "/impact/sign-in", data={"csrf_token": _csrf(page), "api_key": "wrong"}, headers={"Accept-Language": "fr"}
    )
    assert refused.status_code == 401
    assert "That key is unknown, malformed or revoked." in refused.get_data(as_text=True)  # English was chosen


def test_the_impact_page_refuses_forged_forms_and_non_admin_keys(services: Services, client: FlaskClient) -> None:
    client.get("/impact")
    forged = client.post("/impact/sign-in", data={"csrf_token": "guess", "api_key": _key(services, "admin")})
    assert forged.status_code == 400
    refused = _sign_in(client, _key(services, "portal"))
    assert refused.status_code == 403
    assert "<table" not in client.get("/impact").get_data(as_text=True)


def test_an_address_trying_keys_on_the_sign_in_form_gets_429_before_the_right_one(
    services: Services, client: FlaskClient
) -> None:
    limit = services.settings.bad_api_keys_per_address_per_minute
    statuses = {_sign_in(client, f"guess-{n}").status_code for n in range(limit)}
    refused = _sign_in(client, _key(services, "admin"))
    assert statuses == {401}
    assert refused.status_code == 429 and "Too many unknown keys" in refused.get_data(as_text=True)
    assert "<table" not in client.get("/impact").get_data(as_text=True)


def test_too_many_band_labels_tell_the_api_and_the_impact_page_what_to_run(
    services: Services, client: FlaskClient
) -> None:
    from feeds.models import feed_keys

    today = datetime.now(UTC).date()
    _seed(services, first=today - timedelta(days=200), second=today)
    with services.transaction() as session:  # labels of bands renamed again and again, each still on a survey
        session.execute(feed_keys.insert(), [{"kind": "band", "value": f"Band {n}"} for n in range(12)])
    admin = _key(services, "admin")
    api = client.get("/api/v1/aggregates?level=branch", headers={"Authorization": f"Bearer {admin}"})
    assert api.status_code == 503 and "ppi reband" in api.get_json()["detail"]
    _sign_in(client, admin)
    page = client.get("/impact")
    assert page.status_code == 503
    assert page.get_data(as_text=True).startswith("The impact figures cannot be shown right now:")
    assert "impact-connect ppi reband" in page.get_data(as_text=True)


def test_signing_out_forgets_the_key(services: Services, client: FlaskClient) -> None:
    _sign_in(client, _key(services, "admin"))
    page = client.get("/impact").get_data(as_text=True)
    client.post("/impact/sign-out", data={"csrf_token": _csrf(page)})
    assert "api_key" in client.get("/impact").get_data(as_text=True)
    with services.transaction() as session:
        assert session.scalars(select(FeedDelivery)).all() == []


# --- bands renamed -----------------------------------------------------------------------------------------------


def test_after_bands_were_renamed_three_times_ppi_reband_brings_the_feed_back(services: Services, runner) -> None:
    import random

    from scoring.loader import load_scorecard
    from surveys import service
    from surveys.cli import ppi_group
    from tests.factories import STANDARD_BANDS, configure_ppi

    answer_counts = [len(question.answers) for question in load_scorecard("KEN-2024").questions]
    choose = random.Random(1)
    renamings = [
        STANDARD_BANDS,
        "0-24:Maskini sana,25-44:Maskini,45-69:Hatarini,70-100:Si maskini",  # translated
        "0-24:Very Poor,25-44:Poor,45-69:At Risk,70-100:Not poor",  # capitals fixed
    ]
    with services.transaction() as session:
        office = make_office(session)
    for bands in renamings:
        with services.transaction() as session:
            configure_ppi(session, bands=bands)
            for _ in range(40):
                client_id = make_client(session, office=office).id
                answers = [choose.randint(1, count) for count in answer_counts]
                service.create_survey(
                    session, client_id, answers, date_collected=date(2026, 5, 1), mode="self", channel="cli",
                    officer_id=None, now=T0, timezone="Africa/Nairobi",
                )  # fmt: skip
    shown = runner.invoke(feed_cli.show_command, [])
    assert shown.exit_code == 1 and "ppi reband" in shown.output  # 12 labels in use: one line saying what to do
    assert shown.exception is None or isinstance(shown.exception, SystemExit)

    today = {"Very Poor", "Poor", "At Risk", "Not poor"}
    with services.transaction() as session:
        stale = sum(survey.band not in today for survey in session.scalars(select(SurveyResponse)))
    assert 60 < stale < 80  # the first settings' "Poor" is also today's
    rebanded = runner.invoke(ppi_group, ["reband"])
    assert rebanded.exit_code == 0, rebanded.output
    assert f"{stale} surveys given today's bands" in rebanded.output
    with services.transaction() as session:
        assert {survey.band for survey in session.scalars(select(SurveyResponse))} <= today
    shown = runner.invoke(feed_cli.show_command, [])
    assert shown.exit_code == 0 and json.loads(shown.output)["feed_version"]
    assert "Very Poor" in shown.output and "Maskini" not in shown.output  # the past read in today's bands


def test_the_feeds_periods_follow_the_mfis_calendar_like_the_survey_dates(services: Services) -> None:
    from dataclasses import replace

    from surveys import service
    from tests.factories import STANDARD_BANDS, configure_ppi

    just_after_midnight_in_nairobi = datetime(2025, 3, 31, 22, 30, tzinfo=UTC)  # 1 April, 01:30 local
    with services.transaction() as session:
        configure_ppi(session, bands=STANDARD_BANDS)
        service.create_survey(
            session,
            make_client(session).id,
            [1] * 10,
            date_collected=date(2025, 4, 1),
            mode="self",
            channel="cli",
            officer_id=None,
            now=just_after_midnight_in_nairobi,
            timezone="Africa/Nairobi",
        )  # fmt: skip  (today on the MFI's calendar: accepted)
    settings = replace(services.settings, suppression_k=1, timezone="Africa/Nairobi")
    with services.transaction() as session:
        feed = document.build(session, settings=settings, now=just_after_midnight_in_nairobi)
    assert feed["periods"][-1] == "2025-Q2"
    everyone = next(level for level in feed["levels"] if level["level"] == "all")
    assert [point["period"] for group in everyone["groups"] for point in group["series"]] == ["2025-Q2"]
