"""The feed's fact table and profile sums stay what a fresh rebuild would make of the data after every write path:
surveys created, edited, back-dated and deleted through the survey service (random sequences), CSV imports that
move clients and accounts, and the demo seed; `feed rebuild-facts` recomputes them from data written by hand."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskCliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from accounts.models import Account, Client, ClientPhone, Fund, Office, Staff
from bootstrap import Services
from feeds import cli as feed_cli
from feeds import jobs as feed_jobs
from feeds import stale, sums
from feeds.aggregates import AggregateError, compute
from feeds.facts import rebuild_facts
from feeds.models import FACT_LINES, feed_facts, feed_facts_stale, feed_keys, feed_profile_dirty, feed_profile_sums
from importer.cli import import_command
from scoring.loader import list_scorecards, load_scorecard
from surveys import service
from surveys.models import SurveyAnswer, SurveyLineResult, SurveyResponse
from tests.conftest import TEST_DATABASE_URL
from tests.factories import NOW, STANDARD_BANDS, configure_ppi, make_client, make_office, make_staff

ANSWER_COUNTS = [len(question.answers) for question in load_scorecard("KEN-2024").questions]
ONE_ANSWERS = [1] * len(ANSWER_COUNTS)
DATES = [
    date(2023, 12, 31),
    date(2024, 1, 5),
    date(2024, 1, 20),
    date(2024, 3, 31),
    date(2024, 4, 1),
    date(2024, 6, 15),
]
OTHER_BANDS = "0-49:Below,50-100:Above"

answers_strategy = st.tuples(*(st.integers(1, count) for count in ANSWER_COUNTS))
operation_strategy = st.one_of(
    st.tuples(st.just("create"), st.integers(0, 3), st.sampled_from(DATES), answers_strategy),
    st.tuples(st.just("edit"), st.integers(0, 30), st.one_of(st.none(), st.sampled_from(DATES)), answers_strategy),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("bands"), st.sampled_from([STANDARD_BANDS, OTHER_BANDS])),
)


def facts_as_values(session: Session) -> list[tuple[Any, ...]]:
    """Every fact row with its keys spelled out (key ids depend on the order strings were first seen)."""
    names = {key_id: value for key_id, value in session.execute(select(feed_keys.c.id, feed_keys.c.value))}
    key_columns = ("profile_id", "line_set_id", "band_id", "first_band_id", "prev_band_id")
    rows = [
        tuple(names.get(value) if column in key_columns else value for column, value in row._mapping.items())
        for row in session.execute(select(feed_facts))
    ]
    return sorted(rows, key=repr)


def sums_as_values(session: Session) -> list[tuple[Any, ...]]:
    """Every profile sum with its profile and layout spelled out, the NULL columns of the layout left out."""
    names = {key_id: value for key_id, value in session.execute(select(feed_keys.c.id, feed_keys.c.value))}
    rows = []
    for row in session.execute(select(feed_profile_sums)):
        values = row._mapping
        keys = (values["period_kind"], names[values["profile_id"]], values["ord"], names[values["layout_id"]])
        measures = (value for column, value in values.items() if column not in KEY_COLUMNS and value is not None)
        rows.append((*keys, *measures))
    return sorted(rows, key=repr)


KEY_COLUMNS = ("period_kind", "profile_id", "ord", "layout_id")


def assert_facts_and_sums_match_a_rebuild(services: Services) -> None:
    """What a reader of the aggregates sees (the facts once the marked clients are caught up, the profile sums once
    the marked profiles are) is a fresh rebuild of both."""
    with services.transaction() as session:
        stale.catch_up(session)
        sums.current(session)
    with services.session_factory() as session:
        assert session.execute(select(feed_facts_stale)).all() == []
        assert session.execute(select(feed_profile_dirty)).all() == []
        kept = facts_as_values(session), sums_as_values(session)
        rebuild_facts(session)
        sums.current(session)
        rebuilt = facts_as_values(session), sums_as_values(session)
        session.rollback()
    assert rebuilt[0] == kept[0]
    assert len(rebuilt[1]) == len(kept[1])
    for fresh, old in zip(rebuilt[1], kept[1], strict=True):
        assert fresh == pytest.approx(old)  # likelihood sums may differ in the last bits: summed in another order


def wipe_clients_and_feed_tables(services: Services) -> None:
    with services.transaction() as session:
        for model in (SurveyLineResult, SurveyAnswer, SurveyResponse, Account, ClientPhone, Client, Staff):
            session.execute(delete(model))
        for table in (feed_facts, feed_facts_stale, feed_profile_sums, feed_profile_dirty):
            session.execute(table.delete())
        for office in session.scalars(select(Office).order_by(Office.id.desc())):
            session.delete(office)
            session.flush()


def _clients(services: Services) -> list[int]:
    """Four clients in two branches, with two officers and loans from two funds."""
    with services.transaction() as session:
        configure_ppi(session, bands=STANDARD_BANDS)
        country = make_office(session, level="country")
        branches = [make_office(session, parent=country) for _ in range(2)]
        officers = [make_staff(session, office=branch) for branch in branches]
        funds = session.scalars(select(Fund)).all() or [Fund(external_id=f"F{i}", name=f"Fund {i}") for i in range(2)]
        session.add_all(funds)
        session.flush()
        ids = []
        for number in range(4):
            client = make_client(session, office=branches[number % 2], officer=officers[number // 2])
            session.add(_loan(client.id, funds[number % 2].id))
            ids.append(client.id)
        return ids


def _loan(client_id: int, fund_id: int) -> Account:
    return Account(
        external_id=f"L{client_id}-{fund_id}",
        client_id=client_id,
        kind="loan",
        currency="KES",
        fund_id=fund_id,
        balance=Decimal("0"),
    )


def survey(session: Session, client_id: int, collected: date, answers: Sequence[int] = ONE_ANSWERS) -> SurveyResponse:
    return service.create_survey(
        session, client_id, answers, date_collected=collected, mode="self", channel="cli", officer_id=None, now=NOW
    )


def _apply(session: Session, operation: tuple[Any, ...], clients: list[int]) -> None:
    surveys = session.scalars(select(SurveyResponse.id).order_by(SurveyResponse.id)).all()
    match operation:
        case ("create", client, collected, answers):
            survey(session, clients[client], collected, answers)
        case ("edit", index, collected, answers) if surveys:
            service.edit_survey(session, surveys[index % len(surveys)], answers, now=NOW, date_collected=collected)
        case ("delete", index) if surveys:
            service.delete_survey(session, surveys[index % len(surveys)], now=NOW)
        case ("bands", bands):
            configure_ppi(session, bands=bands)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=st.lists(operation_strategy, min_size=1, max_size=12))
def test_survey_writes_keep_the_facts_equal_to_a_rebuild(services: Services, operations: list) -> None:
    wipe_clients_and_feed_tables(services)
    clients = _clients(services)
    for operation in operations:
        with services.transaction() as session:
            _apply(session, operation, clients)
        assert_facts_and_sums_match_a_rebuild(services)


def test_a_back_dated_survey_moves_the_clients_facts(services: Services) -> None:
    [client, *_] = _clients(services)
    with services.transaction() as session:
        later = survey(session, client, date(2024, 4, 1))
        survey(session, client, date(2024, 6, 1))
        service.edit_survey(session, later.id, ONE_ANSWERS, now=NOW, date_collected=date(2023, 11, 2))
    with services.transaction() as session:
        assert session.scalars(select(feed_facts_stale.c.client_id)).all() == [client]  # the writer only marks
        assert stale.catch_up(session) == 1
        quarters = session.execute(
            select(feed_facts.c.ord, feed_facts.c.surveys).where(
                feed_facts.c.client_id == client, feed_facts.c.period_kind == "quarter"
            )
        ).all()
    assert sorted(quarters) == [(2023 * 4 + 3, 1), (2024 * 4 + 1, 1)]
    assert_facts_and_sums_match_a_rebuild(services)


@pytest.mark.postgres
@pytest.mark.skipif(not TEST_DATABASE_URL, reason="a race needs TEST_DATABASE_URL")
def test_two_transactions_writing_one_clients_surveys_at_once_both_commit_and_agree(services: Services) -> None:
    [client, *_] = _clients(services)
    with services.transaction() as session:  # the latest survey: neither new one changes the client's row
        survey(session, client, date(2024, 6, 10))
    first_refreshed = threading.Event()

    def record(collected: date, hold: bool) -> None:
        with services.transaction() as session:
            survey(session, client, collected)
            if hold:  # the first transaction keeps its new facts uncommitted while the second one writes
                first_refreshed.set()
                time.sleep(0.5)

    def second() -> None:
        assert first_refreshed.wait(timeout=10)
        record(date(2024, 1, 5), hold=False)

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(record, date(2024, 5, 1), True), pool.submit(second)]
        for future in futures:
            future.result(timeout=30)
    assert_facts_and_sums_match_a_rebuild(services)
    with services.transaction() as session:
        quarters = session.scalars(select(feed_facts.c.ord).where(feed_facts.c.period_kind == "quarter")).all()
    assert sorted(quarters) == [2024 * 4, 2024 * 4 + 1]


def test_the_scheduled_catch_up_job_refreshes_the_marked_clients_and_their_profiles_sums(services: Services) -> None:
    [client, other, *_] = _clients(services)
    with services.transaction() as session:
        survey(session, client, date(2024, 5, 1))
        survey(session, other, date(2024, 5, 2))
    assert feed_jobs.catch_up_facts() == 2
    assert feed_jobs.catch_up_facts() == 0
    with services.transaction() as session:
        assert session.execute(select(feed_facts_stale)).all() == []
        assert session.execute(select(feed_profile_dirty)).all() == []
        yearly = select(func.sum(feed_profile_sums.c.clients)).where(feed_profile_sums.c.period_kind == "year")
        assert session.scalar(yearly) == 2
        assert sorted(session.scalars(select(feed_facts.c.client_id).where(feed_facts.c.period_kind == "year"))) == [
            client,
            other,
        ]
    assert_facts_and_sums_match_a_rebuild(services)


@pytest.mark.postgres
@pytest.mark.skipif(not TEST_DATABASE_URL, reason="a race needs TEST_DATABASE_URL")
def test_a_reader_catching_up_while_a_survey_is_being_written_leaves_that_survey_marked(services: Services) -> None:
    [client, *_] = _clients(services)
    marked = threading.Event()
    caught_up = threading.Event()

    def write() -> None:
        with services.transaction() as session:
            survey(session, client, date(2024, 5, 1))
            marked.set()
            caught_up.wait(timeout=10)  # the reader runs while this survey and its mark are uncommitted

    def read() -> int:
        assert marked.wait(timeout=10)
        with services.transaction() as session:
            refreshed = stale.catch_up(session)  # skips the locked mark instead of waiting for the writer
        caught_up.set()
        return refreshed

    with ThreadPoolExecutor(max_workers=2) as pool:
        writer, reader = pool.submit(write), pool.submit(read)
        writer.result(timeout=30)
        assert reader.result(timeout=30) == 0
    with services.transaction() as session:
        assert session.scalars(select(feed_facts_stale.c.client_id)).all() == [client]
    assert_facts_and_sums_match_a_rebuild(services)
    with services.transaction() as session:
        quarters = session.scalars(select(feed_facts.c.ord).where(feed_facts.c.period_kind == "quarter")).all()
    assert quarters == [2024 * 4 + 1]


# --- CSV import ------------------------------------------------------------------------------------------------


def _run_import(runner: FlaskCliRunner, kind: str, path: Path) -> None:
    result = runner.invoke(import_command, [kind, str(path)])
    assert result.exit_code == 0, result.output


def test_a_csv_import_that_moves_clients_and_accounts_refreshes_their_facts(
    services: Services, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    (tmp_path / "offices.csv").write_text(
        "external_id,name,level,parent_external_id\nKE,Kenya,country,\nB1,One,branch,KE\nB2,Two,branch,KE\n"
    )
    (tmp_path / "staff.csv").write_text("external_id,name,office_external_id\nS1,Officer One,B1\nS2,Officer Two,B2\n")
    (tmp_path / "clients.csv").write_text(
        "external_id,name,office_external_id,officer_external_id\nC1,Client One,B1,S1\nC2,Client Two,B1,S1\n"
    )
    accounts = "external_id,client_external_id,kind,fund_external_id,fund_name,balance\n"
    (tmp_path / "accounts.csv").write_text(f"{accounts}A1,C1,loan,F1,Fund One,0\nA2,C2,loan,F1,Fund One,0\n")
    for kind in ("offices", "staff", "clients", "accounts"):
        _run_import(runner, kind, tmp_path / f"{kind}.csv")
    with services.transaction() as session:
        configure_ppi(session, bands=STANDARD_BANDS)
        for external_id in ("C1", "C2"):
            client_id = session.scalar(select(Client.id).where(Client.external_id == external_id))
            survey(session, client_id, date(2024, 5, 1))
        before = facts_as_values(session)

    (tmp_path / "moved.csv").write_text(
        "external_id,name,office_external_id,officer_external_id\nC1,Client One,B2,S2\nC2,Client Two,B1,S1\n"
    )
    (tmp_path / "moved_accounts.csv").write_text(f"{accounts}A1,C2,loan,F1,Fund One,0\nA3,C1,loan,F2,Fund Two,0\n")
    _run_import(runner, "clients", tmp_path / "moved.csv")
    _run_import(runner, "accounts", tmp_path / "moved_accounts.csv")

    with services.transaction() as session:
        after = facts_as_values(session)
    assert after != before
    assert_facts_and_sums_match_a_rebuild(services)
    with services.transaction() as session:
        [b2] = compute(session, level="branch", period_kind="quarter", k=1)[1:]
        funds = compute(session, level="fund", period_kind="quarter", k=1)
    assert (b2.group_id, b2.clients) == ("B2", 1)
    assert [(cell.group_id, cell.clients) for cell in funds] == [("F1", 1), ("F2", 1)]


def test_the_demo_seed_leaves_facts_equal_to_a_rebuild(services: Services) -> None:
    from simulator.seed import seed_demo

    with services.transaction() as session:
        seed_demo(session, now=NOW)
    assert_facts_and_sums_match_a_rebuild(services)


# --- rebuild-facts ---------------------------------------------------------------------------------------------


def _survey_by_hand(session: Session, client_id: int, lines: list[str]) -> None:
    survey = SurveyResponse(
        client_id=client_id,
        scorecard_id="KEN-2024",
        date_collected=date(2024, 5, 2),
        mode="self",
        channel="cli",
        headline_score=40,
        band="Poor",
    )
    session.add(survey)
    session.flush()
    session.add_all(SurveyLineResult(survey_id=survey.id, line_slug=slug, score=40, likelihood=0.5) for slug in lines)


def test_rebuild_facts_takes_in_surveys_written_by_hand(services: Services, runner: FlaskCliRunner) -> None:
    with services.transaction() as session:
        client = make_client(session)
        _survey_by_hand(session, client.id, ["national", "food"])
    with services.transaction() as session:
        assert compute(session, level="all", period_kind="quarter", k=1) == []

    result = runner.invoke(feed_cli.rebuild_facts_command, [])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("rebuilt 3 feed facts and their profile sums")  # one per period kind
    with services.transaction() as session:
        assert session.execute(select(feed_profile_dirty)).all() == []  # the sums were computed, not left marked
        [cell] = compute(session, level="all", period_kind="quarter", k=1)
    assert (cell.clients, cell.band_counts, cell.poverty_rates) == (1, {"Poor": 1}, {"food": 0.5, "national": 0.5})


def test_a_survey_with_more_poverty_lines_than_fact_columns_stops_the_build(services: Services) -> None:
    with services.transaction() as session:
        client = make_client(session)
        _survey_by_hand(session, client.id, [f"line-{number:02d}" for number in range(FACT_LINES + 1)])
        rebuild_facts(session)
    with services.transaction() as session, pytest.raises(AggregateError, match=f"more than {FACT_LINES}"):
        compute(session, level="all", period_kind="year", k=1)


def test_every_scorecard_fits_the_fact_columns() -> None:
    assert max(len(summary.lines) for summary in list_scorecards()) <= FACT_LINES


def test_office_moves_need_no_refresh_because_the_build_walks_the_tree(services: Services) -> None:
    [client, *_] = _clients(services)
    with services.transaction() as session:
        survey(session, client, date(2024, 5, 1))
        branch = session.get(Office, session.get(Client, client).office_id)
        country = branch.parent.external_id
        region = make_office(session, external_id="NEW-REGION", level="region", parent=branch.parent)
        branch.parent_id = region.id  # the path stays stale: the roll-up follows parent_id
    with services.transaction() as session:
        stale.catch_up(session)
        cells = [compute(session, level=level, period_kind="quarter", k=1) for level in ("region", "country", "all")]
    assert [(cell.group_id, cell.clients) for [cell] in cells] == [("NEW-REGION", 1), (country, 1), ("all", 1)]
    assert_facts_and_sums_match_a_rebuild(services)
