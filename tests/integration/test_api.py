"""The /api/v1 JSON API as a lender, the impact portal and an admin see it: keys, scopes, consent, logging, limits."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import date, timedelta

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from accounts.models import Account, Client, Fund, Office, PinAudit
from api import keys
from api.cli import create_command, list_command, revoke_command
from api.models import ApiAccessLog, ApiKey
from app import create_app
from bootstrap import Services
from consent import service as consent
from settings import Settings
from surveys import service as surveys
from tests.factories import NOW, configure_ppi, make_client, make_office, make_staff

VERY_POOR = [47, 18, 9, 2, 2, 2, 2, 2, 2, 2]  # KEN-2024, absolute line score 25
BANDS = "0-29:Very poor,30-59:Poor,60-100:Better off"


# --- helpers -----------------------------------------------------------------------------------------------------


def _fund(session, external_id: str) -> Fund:
    fund = session.scalar(select(Fund).where(Fund.external_id == external_id))
    if fund is None:
        fund = Fund(external_id=external_id, name=f"Fund {external_id}")
        session.add(fund)
        session.flush()
    return fund


def _borrower(
    session, external_id: str, *, office: Office, fund: str | None = "F1", product_id: int | None = None, **kwargs
) -> Client:
    client = make_client(session, external_id=external_id, office=office, **kwargs)
    if fund is not None:
        _loan(session, client.id, f"L-{external_id}", fund, product_id)
    return client


def _loan(session, client_id: int, external_id: str, fund: str, product_id: int | None = None) -> None:
    account = Account(external_id=external_id, client_id=client_id, kind="loan", currency="KES", product_id=product_id)
    account.fund_id = _fund(session, fund).id
    session.add(account)
    session.flush()


def _share(session, client: Client, granted: bool = True, lender: str | None = None) -> None:
    consent.record(
        session, client.id, granted=granted, lender=lender, text_version="v1", language="en", channel="at-ussd", now=NOW
    )


def _surveyed(session, client_id: int, answers: list[int] = VERY_POOR) -> None:
    """A survey of 2 May 2024 (2024-Q2) recorded for the client."""
    surveys.create_survey(
        session,
        client_id,
        answers,
        date_collected=date(2024, 5, 2),
        mode="officer",
        channel="cli",
        officer_id=None,
        now=NOW,
    )


def _key(services: Services, scope: str, **kwargs: object) -> str:
    with services.transaction() as session:
        _, plaintext = keys.create_key(session, scope=scope, now=NOW, **kwargs)
    return plaintext


def _get(client: FlaskClient, path: str, key: str | None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.get(f"/api/v1{path}", headers=headers)


def _post(client: FlaskClient, path: str, key: str, body: object = None):
    return client.post(f"/api/v1{path}", json=body, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def world(services: Services) -> dict[str, object]:
    """Region R1 with branches BA (with a centre below it) and BB. Clients:
    C1 shares, F1, in BA's centre; C2 shares, F2, BB; C3 F1 never asked; C4 F1 revoked; C5 F1 BB shares."""
    with services.transaction() as session:
        region = make_office(session, external_id="R1", name="Region", level="region")
        branch_a = make_office(session, external_id="BA", name="Branch A", parent=region)
        centre = make_office(session, external_id="BA-1", name="Centre A1", level="center", parent=branch_a)
        branch_b = make_office(session, external_id="BB", name="Branch B", parent=region)
        c1 = _borrower(session, "C1", office=centre, name="Amina Wanjiru Otieno", phones=["+254700000001"])
        c2 = _borrower(session, "C2", office=branch_b, fund="F2")
        c3 = _borrower(session, "C3", office=branch_a)
        c4 = _borrower(session, "C4", office=branch_a)
        c5 = _borrower(session, "C5", office=branch_b)
        for client in (c1, c2, c5):
            _share(session, client)
        _share(session, c4)
        _share(session, c4, granted=False)
        return {"ids": {c.external_id: c.id for c in (c1, c2, c3, c4, c5)}}


# --- keys and authentication -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer", "Basic abc", "Bearer ick_nope", "Bearer ick_abcdefgh_" + "x" * 43],
    ids=["no header", "empty bearer", "wrong scheme", "malformed", "unknown prefix"],
)
def test_requests_without_a_valid_key_get_401_json(client: FlaskClient, authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = client.get("/api/v1/clients", headers=headers)
    assert response.status_code == 401
    assert set(response.get_json()) == {"error", "detail"}


def test_a_right_prefix_with_a_wrong_secret_is_refused(client: FlaskClient, services: Services) -> None:
    key = _key(services, "admin")
    forged = key[: -len("x")] + ("y" if key[-1] != "y" else "z")
    assert _get(client, "/clients", forged).status_code == 401
    assert _get(client, "/clients", key).status_code == 200


def test_cli_shows_the_key_once_and_the_database_never_holds_it(services: Services, runner, client) -> None:
    created = runner.invoke(create_command, ["--scope", "admin", "--name", "ops"])
    assert created.exit_code == 0, created.output
    plaintext = created.output.strip().splitlines()[-1]
    assert plaintext.startswith("ick_")
    prefix, secret = plaintext.split("_", 2)[1:]

    with services.transaction() as session:
        row = session.scalars(select(ApiKey)).one()
        stored = [str(getattr(row, column.key)) for column in ApiKey.__table__.columns]
    assert not any(secret in value for value in stored)
    assert row.prefix == prefix and row.key_hash == hashlib.sha256(secret.encode()).hexdigest()

    listed = runner.invoke(list_command, [])
    assert prefix in listed.output and secret not in listed.output
    assert _get(client, "/clients", plaintext).status_code == 200


def test_a_revoked_key_is_refused_on_the_next_request(services: Services, runner, client) -> None:
    key = _key(services, "admin")
    assert _get(client, "/clients", key).status_code == 200
    prefix = key.split("_")[1]
    assert runner.invoke(revoke_command, [prefix]).exit_code == 0
    assert _get(client, "/clients", key).status_code == 401
    assert runner.invoke(revoke_command, ["zzzzzzzz"]).exit_code != 0


def test_cli_refuses_lender_limits_on_other_scopes_and_unknown_funds(services: Services, runner) -> None:
    assert runner.invoke(create_command, ["--scope", "portal", "--funds", "F1"]).exit_code != 0
    unknown = runner.invoke(create_command, ["--scope", "lender", "--funds", "NOPE"])
    assert unknown.exit_code != 0 and "NOPE" in unknown.output


def test_last_use_is_written_at_most_once_a_minute(services: Services) -> None:
    key = _key(services, "admin")
    with services.transaction() as session:
        keys.authenticate(session, key, now=NOW)
    with services.transaction() as session:
        keys.authenticate(session, key, now=NOW + timedelta(seconds=30))
        assert session.scalars(select(ApiKey)).one().last_used_at.replace(tzinfo=NOW.tzinfo) == NOW
    with services.transaction() as session:
        keys.authenticate(session, key, now=NOW + timedelta(seconds=61))
        assert session.scalars(select(ApiKey)).one().last_used_at.replace(tzinfo=NOW.tzinfo) > NOW


@contextmanager
def _app_with(settings: Settings, **changes: object) -> Iterator[tuple[FlaskClient, Services]]:
    """A second app on the test database with some settings changed; its Redis keys are dropped afterwards."""
    changed = create_app(replace(settings, **changes))
    services: Services = changed.extensions["services"]
    try:
        yield changed.test_client(), services
    finally:
        services.redis.flushdb()
        services.dispose()


def test_over_the_rate_limit_a_key_gets_429_with_retry_after(app, settings: Settings) -> None:
    with _app_with(settings, rate_limit_per_key_per_minute=2) as (http, services):
        key = _key(services, "portal")
        other = _key(services, "portal")
        statuses = [_get(http, "/aggregates?level=all", key).status_code for _ in range(3)]
        refused = _get(http, "/aggregates?level=all", key)
        assert statuses[:2] == [200, 200] and statuses[2] == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
        assert refused.get_json()["error"] == "rate limit exceeded"
        assert _get(http, "/aggregates?level=all", other).status_code == 200  # limits are per key


def test_an_address_trying_bad_keys_gets_429_and_its_good_key_waits_too(app, settings: Settings) -> None:
    with _app_with(settings, bad_api_keys_per_address_per_minute=3) as (http, services):
        good = _key(services, "portal")
        revoked = _key(services, "portal")
        with services.transaction() as session:
            keys.revoke_key(session, revoked.split("_")[1], now=NOW)
        guesses = [good[:-4] + "zzzz", "ick_nosuchkey_secret", revoked]
        assert [_get(http, "/aggregates?level=all", guess).status_code for guess in guesses] == [401, 401, 401]
        refused = _get(http, "/aggregates?level=all", good)
        assert (
            refused.status_code == 429 and refused.get_json()["error"] == "too many invalid API keys from this address"
        )
        assert 1 <= int(refused.headers["Retry-After"]) <= 60

        elsewhere = http.get(
            "/api/v1/aggregates?level=all",
            headers={"Authorization": f"Bearer {good}"},
            environ_base={"REMOTE_ADDR": "10.0.0.9"},
        )
        assert elsewhere.status_code == 200  # the limit is per address: the MFI's portal elsewhere is not locked out
        assert not any("10.0.0.9" in key.decode() or "127.0.0.1" in key.decode() for key in services.redis.keys())


def test_behind_a_proxy_the_bad_key_limit_counts_the_forwarded_client_not_the_proxy(app, settings: Settings) -> None:
    with _app_with(settings, bad_api_keys_per_address_per_minute=2, proxy_hops=1) as (http, services):
        good = _key(services, "portal")

        def from_client(address: str, key: str) -> int:
            headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": address}
            return http.get("/api/v1/aggregates?level=all", headers=headers).status_code

        assert [from_client("203.0.113.7", "ick_nosuchkey_secret") for _ in range(3)] == [401, 401, 429]
        assert from_client("198.51.100.2", good) == 200  # another client behind the same proxy


# --- what a lender sees ------------------------------------------------------------------------------------------


def test_lender_sees_only_consenting_clients_in_its_funds(client: FlaskClient, services: Services, world) -> None:
    key = _key(services, "lender", funds=["F1"])
    listed = _get(client, "/clients", key).get_json()
    assert [item["external_id"] for item in listed["items"]] == ["C1", "C5"] and listed["total"] == 2

    unknown = _get(client, "/clients/NOBODY", key)
    assert unknown.status_code == 404
    for hidden in ("C2", "C3", "C4"):  # other fund, never asked, revoked
        response = _get(client, f"/clients/{hidden}", key)
        assert (response.status_code, response.get_json()) == (404, unknown.get_json()), hidden
        assert _get(client, f"/clients/{hidden}/surveys", key).status_code == 404


def test_a_client_whose_external_id_holds_slashes_can_be_read(client: FlaskClient, services: Services) -> None:
    from consent import service as consent
    from tests.factories import make_client

    with services.transaction() as session:
        client_id = make_client(session, external_id="KE/001/23").id
        consent.record(session, client_id, granted=True, text_version="v1", language="en", channel="at-ussd", now=NOW)
    key = _key(services, "lender")
    assert [item["external_id"] for item in _get(client, "/clients", key).get_json()["items"]] == ["KE/001/23"]
    for path in ("/clients/KE/001/23", "/clients/KE%2F001%2F23"):
        assert _get(client, path, key).get_json()["external_id"] == "KE/001/23"
        assert _get(client, path + "/surveys", key).status_code == 200


def test_profile_is_minimal(client: FlaskClient, services: Services, world) -> None:
    profile = _get(client, "/clients/C1", _key(services, "lender")).get_json()
    assert profile == {"external_id": "C1", "display_name": "Amina O.", "office": "Centre A1", "poverty_status": None}


def test_office_scope_covers_the_subtree_only(client: FlaskClient, services: Services, world) -> None:
    key = _key(services, "lender", offices=["BA"])
    assert [i["external_id"] for i in _get(client, "/clients", key).get_json()["items"]] == ["C1"]
    assert _get(client, "/clients/C5", key).status_code == 404  # shares, but in branch B


def test_revocation_hides_the_client_on_the_next_request(client: FlaskClient, services: Services, world) -> None:
    key = _key(services, "lender")
    assert _get(client, "/clients/C1", key).status_code == 200
    with services.transaction() as session:
        _share(session, session.get(Client, world["ids"]["C1"]), granted=False)
    assert _get(client, "/clients/C1", key).status_code == 404


def test_a_per_lender_revoke_hides_the_client_from_that_lender_only(client, services: Services, world) -> None:
    acme, other = _key(services, "lender", lender="acme"), _key(services, "lender", lender="other")
    with services.transaction() as session:
        _share(session, session.get(Client, world["ids"]["C1"]), granted=False, lender="acme")
    assert _get(client, "/clients/C1", acme).status_code == 404
    assert _get(client, "/clients/C1", other).status_code == 200


def test_every_lender_request_is_logged_with_the_clients_returned(client, services: Services, world) -> None:
    ids = world["ids"]
    lender = _key(services, "lender", funds=["F1"])
    _get(client, "/clients", lender)
    _get(client, "/clients/C1/surveys", lender)
    _get(client, "/clients/C3", lender)
    _get(client, "/clients", _key(services, "admin"))  # admins are not logged here
    with services.transaction() as session:
        rows = [(row.endpoint, row.client_ids) for row in session.scalars(select(ApiAccessLog).order_by("id"))]
    assert rows == [
        ("GET /api/v1/clients", [ids["C1"], ids["C5"]]),
        ("GET /api/v1/clients/C1/surveys", [ids["C1"]]),
        ("GET /api/v1/clients/C3", []),
    ]


def test_survey_history_has_scores_and_likelihoods_but_no_answers(client, services: Services, world) -> None:
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        _surveyed(session, world["ids"]["C1"])
    key = _key(services, "lender")
    history = _get(client, "/clients/C1/surveys", key).get_json()["surveys"]
    assert len(history) == 1
    survey = history[0]
    assert (survey["date_collected"], survey["scorecard_id"], survey["headline_score"], survey["band"]) == (
        "2024-05-02",
        "KEN-2024",
        25,
        "Very poor",
    )
    assert len(survey["lines"]) == 12 and all(0 <= line["likelihood"] <= 1 for line in survey["lines"])
    assert "answers" not in survey
    status = _get(client, "/clients/C1", key).get_json()["poverty_status"]
    assert status == {"scorecard_id": "KEN-2024", "band": "Very poor", "date_collected": "2024-05-02"}


# --- scopes and bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scope", "method", "path"),
    [
        ("portal", "get", "/clients"),
        ("portal", "get", "/clients/C1"),
        ("lender", "get", "/clients/C1/consent"),
        ("lender", "post", "/clients/C1/unlock"),
        ("lender", "get", "/ppi/settings"),
        ("portal", "put", "/ppi/settings"),
    ],
)
def test_keys_are_refused_outside_their_scope(client, services: Services, world, scope, method, path) -> None:
    response = getattr(client, method)(f"/api/v1{path}", headers={"Authorization": f"Bearer {_key(services, scope)}"})
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


@pytest.mark.parametrize(
    "query", ["page=0", "page=abc", "per_page=201", "per_page=-1", "page=99999999999"], ids=lambda q: q
)
def test_bad_paging_is_a_400(client: FlaskClient, services: Services, query: str) -> None:
    response = _get(client, f"/clients?{query}", _key(services, "admin"))
    assert response.status_code == 400 and "detail" in response.get_json()


def test_paging_walks_the_list(client: FlaskClient, services: Services, world) -> None:
    key = _key(services, "admin")
    pages = [_get(client, f"/clients?per_page=2&page={n}", key).get_json() for n in (1, 2, 3, 4)]
    assert [[i["external_id"] for i in page["items"]] for page in pages] == [["C1", "C2"], ["C3", "C4"], ["C5"], []]
    assert {page["total"] for page in pages} == {5}


def test_unknown_paths_and_methods_answer_in_json(client: FlaskClient) -> None:
    assert _get(client, "/nothing-here", None).get_json()["error"] == "not found"
    response = client.delete("/api/v1/openapi.json")
    assert response.status_code == 405 and "GET" in response.headers["Allow"]


# --- admin actions -----------------------------------------------------------------------------------------------


def test_admin_records_paper_consent_and_reads_the_history(client, services: Services, world) -> None:
    with services.transaction() as session:
        make_staff(session, external_id="S001")
    admin, lender = _key(services, "admin"), _key(services, "lender")
    assert _get(client, "/clients/C3", lender).status_code == 404

    recorded = _post(client, "/clients/C3/consent", admin, {"granted": True, "officer": "S001"})
    assert recorded.status_code == 201, recorded.get_json()
    assert (recorded.get_json()["channel"], recorded.get_json()["officer"]) == ("paper", "S001")
    assert _get(client, "/clients/C3", lender).status_code == 200

    history = _get(client, "/clients/C4/consent", admin).get_json()["events"]
    assert [event["granted"] for event in history] == [True, False]
    assert _post(client, "/clients/C3/consent", admin, {"granted": True, "officer": "NOPE"}).status_code == 400
    assert _post(client, "/clients/C3/consent", admin, {"granted": "yes", "officer": "S001"}).status_code == 400
    assert _post(client, "/clients/NOBODY/consent", admin, {"granted": True, "officer": "S001"}).status_code == 404


def test_admin_issues_an_activation_code_and_unlocks(client, services: Services, world) -> None:
    admin = _key(services, "admin")
    issued = _post(client, "/clients/C1/activation-code", admin)
    assert issued.status_code == 201
    code = issued.get_json()["code"]
    from accounts.service import activate

    with services.transaction() as session:
        assert activate(session, world["ids"]["C1"], code, now=NOW.now(NOW.tzinfo)) is True

    unlocked = _post(client, "/clients/C1/unlock", admin)
    assert unlocked.get_json() == {"external_id": "C1", "unlocked": True}
    with services.transaction() as session:
        actions = [a.action for a in session.scalars(select(PinAudit).where(PinAudit.client_id == world["ids"]["C1"]))]
    assert len(actions) >= 2


def test_no_activation_code_for_a_client_who_already_has_a_pin(client, services: Services, world) -> None:
    from accounts.service import set_pin

    with services.transaction() as session:
        assert set_pin(session, world["ids"]["C1"], "4821", phone=None, now=NOW) is None
    refused = _post(client, "/clients/C1/activation-code", _key(services, "admin"))
    assert refused.status_code == 409 and "reset-pin C1" in refused.get_json()["detail"]


def test_admin_actions_work_for_a_client_whose_external_id_holds_slashes(client, services: Services, world) -> None:
    with services.transaction() as session:
        make_client(session, external_id="KE/001/23")
        make_staff(session, external_id="S001")
    admin = _key(services, "admin")
    recorded = _post(client, "/clients/KE/001/23/consent", admin, {"granted": True, "officer": "S001"})
    assert recorded.status_code == 201, recorded.get_json()
    history = _get(client, "/clients/KE/001/23/consent", admin).get_json()
    assert history["external_id"] == "KE/001/23" and [event["granted"] for event in history["events"]] == [True]
    assert _post(client, "/clients/KE/001/23/activation-code", admin).status_code == 201
    assert _post(client, "/clients/KE/001/23/unlock", admin).get_json() == {
        "external_id": "KE/001/23",
        "unlocked": True,
    }
    assert _get(client, "/clients/KE/001/23", admin).get_json()["external_id"] == "KE/001/23"  # the profile still


def test_admin_reads_and_changes_ppi_settings(client: FlaskClient, services: Services) -> None:
    admin = _key(services, "admin")
    assert _get(client, "/ppi/settings", admin).status_code == 404
    body = {"scorecard_id": "KEN-2024", "headline_line": "absolute-poverty-line", "bands": BANDS}
    saved = client.put("/api/v1/ppi/settings", json=body, headers={"Authorization": f"Bearer {admin}"})
    assert saved.status_code == 200, saved.get_json()
    shown = _get(client, "/ppi/settings", admin).get_json()
    assert shown["scorecard_id"] == "KEN-2024" and shown["bands"][0] == {"low": 0, "high": 29, "label": "Very poor"}
    paused = {"scorecard_id": "KEN-2024", "headline_line": "absolute-poverty-line", "status": "inactive"}
    kept = client.put("/api/v1/ppi/settings", json=paused, headers={"Authorization": f"Bearer {admin}"}).get_json()
    assert kept.get("status") == "inactive", kept
    assert kept["bands"] == shown["bands"]  # bands left out: kept
    cleared = client.put(
        "/api/v1/ppi/settings", json={**paused, "bands": ""}, headers={"Authorization": f"Bearer {admin}"}
    ).get_json()
    assert "bands" in cleared and not cleared["bands"], cleared
    wrong = client.put(
        "/api/v1/ppi/settings", json={**body, "headline_line": "nope"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert wrong.status_code == 400 and "nope" in wrong.get_json()["detail"]
    unknown = client.put(
        "/api/v1/ppi/settings", json={**body, "scorecard_id": "NOPE"}, headers={"Authorization": f"Bearer {admin}"}
    )
    detail = unknown.get_json()["detail"]
    assert unknown.status_code == 400 and detail.startswith("unknown scorecard 'NOPE'") and ".json" not in detail
    broken = client.put(  # scorecards/schema.json is a file there, but not a scorecard
        "/api/v1/ppi/settings", json={**body, "scorecard_id": "schema"}, headers={"Authorization": f"Bearer {admin}"}
    )
    assert broken.status_code == 400 and ".json" not in broken.get_json()["detail"]
    assert broken.get_json()["detail"].startswith("scorecard 'schema' cannot be loaded")
    superscript = client.put(
        "/api/v1/ppi/settings",
        json={**body, "bands": "0-4\u00b2:A,43-100:B"},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert superscript.status_code == 400 and "cannot read band" in superscript.get_json()["detail"]


# --- aggregates --------------------------------------------------------------------------------------------------


def _surveyed_clients(services: Services, office_id: str, count: int, *, sharing: bool = False) -> None:
    with services.transaction() as session:
        office = session.scalar(select(Office).where(Office.external_id == office_id))
        for number in range(count):
            client = _borrower(session, f"{office_id}-S{number}", office=office)
            if sharing:
                _share(session, client)
            _surveyed(session, client.id)


def test_aggregates_suppress_cells_below_k_clients(client, services: Services, world) -> None:
    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    _surveyed_clients(services, "BA", 1)
    _surveyed_clients(services, "BB", k)
    _surveyed_clients(services, "BA-1", k - 1)  # BA's centre: with BA's own client, BA has k

    body = _get(client, "/aggregates?level=branch&period_kind=quarter", _key(services, "portal")).get_json()
    cells = {cell["group"]["id"]: cell for cell in body["cells"]}
    assert {cell["period"] for cell in body["cells"]} == {"2024-Q2"}
    assert cells["BA"]["suppressed"] is False and cells["BA"]["clients"] == k
    assert cells["BB"]["suppressed"] is False and cells["BB"]["clients"] == k
    assert cells["BB"]["band_counts"] == {"Very poor": k}
    centres = _get(client, "/aggregates?level=center", _key(services, "portal")).get_json()["cells"]
    assert [(cell["group"]["id"], cell["suppressed"], "clients" in cell) for cell in centres] == [("BA-1", True, False)]


def test_a_withheld_branch_cannot_be_worked_out_from_its_region_less_the_shown_branches(
    client, services: Services, world
) -> None:
    """Region R1 = BA + BB: with BA under k withheld, BB is withheld too, or R1 less BB would give BA away."""
    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    _surveyed_clients(services, "BA", k - 1)
    _surveyed_clients(services, "BB", k + 1)
    portal = _key(services, "portal")
    branches = _get(client, "/aggregates?level=branch&period=2024-Q2", portal).get_json()["cells"]
    assert [(cell["group"]["id"], cell["suppressed"]) for cell in branches] == [("BA", True), ("BB", True)]
    region = _get(client, "/aggregates?level=region&period=2024-Q2", portal).get_json()["cells"]
    assert [(cell["group"]["id"], cell["clients"]) for cell in region] == [("R1", 2 * k)]  # the sum of the two


def test_a_lender_sees_aggregates_of_its_offices_only(client, services: Services, world) -> None:
    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    _surveyed_clients(services, "BA", k, sharing=True)
    _surveyed_clients(services, "BB", k, sharing=True)
    body = _get(client, "/aggregates?level=branch", _key(services, "lender", offices=["BA"])).get_json()
    assert [cell["group"]["id"] for cell in body["cells"]] == ["BA"]


def test_a_lenders_aggregates_count_only_the_clients_who_share_with_it(client, services: Services, world) -> None:
    """Otherwise a cell less the clients the lender reads one by one gives a revoked client's band and score."""
    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        office = session.scalar(select(Office).where(Office.external_id == "BB"))
        for number, answers in enumerate([VERY_POOR] * k + [[1] * 10]):
            borrower = _borrower(session, f"BB-P{number}", office=office)
            _share(session, borrower)
            _surveyed(session, borrower.id, answers)
        _share(session, borrower, granted=False)  # the last one, the only one not very poor, revokes
        _share(session, borrower, granted=True, lender="other-lender")  # and shares with someone else only

    def branch_b(key: str) -> dict:
        cells = _get(client, "/aggregates?level=branch&period=2024-Q2", key).get_json()["cells"]
        return next(cell for cell in cells if cell["group"]["id"] == "BB")

    lender = branch_b(_key(services, "lender", lender="kiva"))
    assert lender["clients"] == k and lender["band_counts"] == {"Very poor": k}
    portal = branch_b(_key(services, "portal"))
    assert portal["clients"] == k + 1 and sum(portal["band_counts"].values()) == k + 1
    assert branch_b(_key(services, "lender", lender="other-lender"))["clients"] == k + 1


def test_a_lenders_cell_below_k_sharing_clients_is_withheld_though_the_office_is_bigger(
    client, services: Services, world
) -> None:
    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    _surveyed_clients(services, "BA", k - 1, sharing=True)
    _surveyed_clients(services, "BB", k)  # never asked: not the lender's to see, even summed
    cells = _get(client, "/aggregates?level=region&period=2024-Q2", _key(services, "lender")).get_json()["cells"]
    assert [(cell["group"]["id"], cell["suppressed"]) for cell in cells] == [("R1", True)]


def test_a_lender_limited_to_a_fund_sees_the_products_of_that_fund_only(client, services: Services, world) -> None:
    from accounts.models import LoanProduct

    k = services.settings.suppression_k
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        office = session.scalar(select(Office).where(Office.external_id == "BB"))
        ours, theirs = LoanProduct(external_id="P1", name="Biashara"), LoanProduct(external_id="P2", name="Kilimo")
        session.add_all([ours, theirs])
        session.flush()
        for number in range(k):
            borrower = _borrower(session, f"BB-L{number}", office=office, fund="F1", product_id=ours.id)
            _loan(session, borrower.id, f"L2-{number}", "F2", theirs.id)
            _share(session, borrower)
            _surveyed(session, borrower.id)
    lender = _key(services, "lender", funds=["F1"])
    products = _get(client, "/aggregates?level=product&period=2024-Q2", lender).get_json()["cells"]
    assert [(cell["group"]["id"], cell["clients"]) for cell in products] == [("P1", k)]  # not F2's product P2
    everything = _get(client, "/aggregates?level=product&period=2024-Q2", _key(services, "portal")).get_json()
    assert [cell["group"]["id"] for cell in everything["cells"]] == ["P1", "P2"]


def test_aggregates_for_one_period(client, services: Services, world) -> None:
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
    _surveyed_clients(services, "BB", services.settings.suppression_k)
    key = _key(services, "admin")
    assert [
        cell["period"] for cell in _get(client, "/aggregates?level=all&period=2024-Q2", key).get_json()["cells"]
    ] == ["2024-Q2"]
    assert _get(client, "/aggregates?level=all&period=2024-Q3", key).get_json()["cells"] == []


@pytest.mark.parametrize("query", ["period=2026-Q5", "period=26-Q1", "level=planet", "period_kind=week"])
def test_bad_aggregate_parameters_are_a_400(client: FlaskClient, services: Services, world, query: str) -> None:
    response = _get(client, f"/aggregates?{query}", _key(services, "admin"))
    assert response.status_code == 400, response.get_json()


@pytest.mark.parametrize("option", ["--name", "--lender"])
def test_cli_refuses_a_name_or_lender_longer_than_the_key_table_holds(services: Services, runner, option) -> None:
    longest = ApiKey.__table__.c[option.removeprefix("--")].type.length

    too_long = runner.invoke(create_command, ["--scope", "lender", option, "x" * (longest + 1)])
    assert too_long.exit_code == 2 and isinstance(too_long.exception, SystemExit)
    assert too_long.output.splitlines()[-1] == (
        f"Error: Invalid value for '{option}': at most {longest} characters, not {longest + 1}"
    )
    with services.transaction() as session:
        assert session.scalars(select(ApiKey)).all() == []
    fits = runner.invoke(create_command, ["--scope", "lender", option, "x" * longest])
    assert fits.exit_code == 0, fits.output
