"""The demo MFI: the office tree, officers and clients the README promises, PPI history, and idempotent seeding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from accounts.models import Account, Client, ClientPhone, Office, Staff, Transaction
from simulator import cli as simulator_cli
from simulator.seed import _survey_questions, demo_plan, seed_demo
from surveys import service as surveys
from surveys.models import SurveyResponse

NOW = datetime(2026, 3, 15, 9, 30, tzinfo=UTC)


@pytest.fixture
def seeded(services):
    with services.transaction() as session:
        return seed_demo(session, now=NOW)


def test_office_tree_has_one_country_two_regions_four_branches_and_their_centers_and_groups(seeded):
    assert seeded.offices_by_level == {"country": 1, "region": 2, "branch": 4, "center": 8, "group": 16}


def test_every_office_path_extends_its_parents(services, seeded):
    with services.transaction() as session:
        offices = {office.id: office for office in session.scalars(select(Office))}
    for office in offices.values():
        parent_path = offices[office.parent_id].path if office.parent_id else "/"
        assert office.path == f"{parent_path}{office.id}/"


def test_four_loan_officers_with_known_phones(services, seeded):
    with services.transaction() as session:
        officers = session.execute(select(Staff.external_id, Staff.phone, Staff.role).order_by(Staff.external_id))
        assert [tuple(row) for row in officers] == [
            (f"S00{n}", f"+25471100000{n}", "loan_officer") for n in (1, 2, 3, 4)
        ]


def test_two_hundred_clients_and_c0200_shares_c0001s_phone(services, seeded):
    assert seeded.clients == 200
    with services.transaction() as session:
        on_shared = session.scalars(
            select(Client.external_id).join(ClientPhone).where(ClientPhone.phone == "+254700000001")
        )
        assert sorted(on_shared) == ["C0001", "C0200"]
        phone_of_c0002 = session.scalar(select(ClientPhone.phone).join(Client).where(Client.external_id == "C0002"))
        assert phone_of_c0002 == "+254700000002"
        languages = dict(session.execute(select(Client.language, func.count()).group_by(Client.language)).all())
    assert set(languages) <= {"sw", "en"}
    assert min(languages.values()) > 50


def test_clients_have_loans_savings_and_a_year_of_transactions_ending_today(services, seeded):
    with services.transaction() as session:
        kinds = dict(session.execute(select(Account.kind, func.count()).group_by(Account.kind)).all())
        first, last = session.execute(
            select(func.min(Transaction.occurred_on), func.max(Transaction.occurred_on))
        ).one()
    assert kinds["loan"] > 150 and kinds["savings"] > 80
    assert last <= NOW.date() and last >= NOW.date() - timedelta(days=35)
    assert first >= NOW.date() - timedelta(days=366)


def test_ppi_is_configured_with_kenya_2024_and_the_national_line(services, seeded):
    with services.transaction() as session:
        config = surveys.get_config(session)
    assert config is not None
    assert (config.scorecard_id, config.status, config.headline_line) == ("KEN-2024", "active", "absolute-poverty-line")
    assert config.bands_text() == "0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor"
    assert config.show_band_to_client is True


def test_about_150_clients_have_back_dated_surveys_and_a_poverty_status(services, seeded):
    with services.transaction() as session:
        surveyed = session.scalar(select(func.count(func.distinct(SurveyResponse.client_id))))
        oldest, newest = session.execute(
            select(func.min(SurveyResponse.date_collected), func.max(SurveyResponse.date_collected))
        ).one()
        modes = set(session.scalars(select(SurveyResponse.mode).distinct()))
        with_status = session.scalar(select(func.count()).select_from(Client).where(Client.poverty_band.is_not(None)))
    assert surveyed == 150 and with_status == 150
    assert oldest >= NOW.date() - timedelta(days=548) and newest < NOW.date()
    assert modes == {"self", "officer"}
    assert 150 < seeded.surveys <= 450


def test_seeding_twice_changes_nothing(services, seeded):
    with services.transaction() as session:
        again = seed_demo(session, now=NOW + timedelta(days=3))
    assert again.rows_created == 0
    assert (again.clients, again.accounts, again.transactions, again.surveys) == (
        seeded.clients,
        seeded.accounts,
        seeded.transactions,
        seeded.surveys,
    )


def test_seeding_is_deterministic(services, seeded):
    plan = demo_plan(NOW, _survey_questions())
    assert plan == demo_plan(NOW, _survey_questions())
    with services.transaction() as session:
        names = list(session.scalars(select(Client.name).order_by(Client.external_id)))
    assert names == [client["name"] for client in plan.clients]


def test_demo_command_migrates_seeds_explains_and_serves(runner, services, monkeypatch):
    served = {}
    monkeypatch.setattr(
        simulator_cli, "run_simple", lambda host, port, app, **kw: served.update(host=host, port=port, **kw)
    )
    result = runner.invoke(simulator_cli.demo_command, ["--port", "5055"])
    assert result.exit_code == 0, result.output
    assert served == {"host": "127.0.0.1", "port": 5055, "threaded": True, "use_reloader": False}
    assert "http://127.0.0.1:5055/simulator" in result.output
    assert "+254711000001" in result.output and "/webhooks/africastalking/ussd" in result.output
    with services.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Client)) == 200
    again = runner.invoke(simulator_cli.demo_command, [])
    assert "already seeded, nothing added" in again.output
