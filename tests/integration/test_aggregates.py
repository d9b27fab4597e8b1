"""Aggregates computed in SQL agree with a brute-force Python computation on random small data sets.

The brute force follows the issue's definitions literally: one survey per client and period (the latest, ties ->
highest id), band transitions from the client's first survey ever and from the immediately preceding period, and
cells under k clients withheld.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from accounts.models import Account, Client, ClientPhone, Fund, LoanProduct, Office, Staff
from bootstrap import Services
from feeds.aggregates import (
    AggregateError,
    Cell,
    Scope,
    canonical_json,
    cell_to_json,
    cells_to_json,
    compute,
    compute_levels,
    feed_groups,
    period_label,
    period_ordinal,
)
from feeds.facts import rebuild_facts
from surveys.models import SurveyAnswer, SurveyLineResult, SurveyResponse
from tests.factories import make_client, make_office, make_staff

BANDS = [None, "A", "B", "C"]
LINES = ["food", "national"]
DATES = [date(2024, 1, 5), date(2024, 1, 20), date(2024, 2, 3), date(2024, 4, 9), date(2024, 6, 30), date(2025, 2, 1)]
# Tree: country -> two regions -> branches; one branch has a center with a group under it.
TREE = [("KE", "country", None), ("R1", "region", 0), ("R2", "region", 0), ("B1", "branch", 1), ("B2", "branch", 1)]
TREE += [("B3", "branch", 2), ("C1", "center", 3), ("G1", "group", 6)]
LEVELS = ["all", "country", "region", "branch", "center", "group", "officer", "fund", "product"]

survey_strategy = st.tuples(
    st.integers(0, 9),  # client index (modulo the number of clients)
    st.sampled_from(DATES),
    st.sampled_from(BANDS),
    st.one_of(st.none(), st.integers(0, 100)),
    st.lists(st.sampled_from(LINES), unique=True),
    st.floats(0, 1),
)
client_strategy = st.tuples(
    st.integers(0, len(TREE) - 1),  # office
    st.one_of(st.none(), st.integers(0, 2)),  # officer
    st.lists(st.tuples(st.one_of(st.none(), st.integers(0, 1)), st.one_of(st.none(), st.integers(0, 1))), max_size=2),
)


@dataclass
class World:
    offices: list[Office]
    client_rows: list[tuple[Client, list[int], list[int]]]  # client, fund indexes, product indexes
    surveys: list[dict[str, Any]]
    officer_ids: dict[int, str]
    financed: set[tuple[str, str]] = field(default_factory=set)  # (fund, product) external ids an account pairs


def _wipe(services: Services) -> None:
    with services.transaction() as session:
        for model in (SurveyLineResult, SurveyAnswer, SurveyResponse, Account, ClientPhone, Client, Staff):
            session.execute(delete(model))
        for model in (Fund, LoanProduct):
            session.execute(delete(model))
        for office in session.query(Office).order_by(Office.id.desc()):
            session.delete(office)
            session.flush()


def _build(services: Services, clients: list[Any], surveys: list[Any]) -> World:
    with services.transaction() as session:
        offices: list[Office] = []
        for external_id, level, parent in TREE:
            parent_office = offices[parent] if parent is not None else None
            offices.append(make_office(session, external_id=external_id, level=level, parent=parent_office))
        officers = [make_staff(session, office=offices[3]) for _ in range(3)]
        funds = [Fund(external_id=f"F{i}", name=f"Fund {i}") for i in range(2)]
        products = [LoanProduct(external_id=f"P{i}", name=f"Product {i}") for i in range(2)]
        session.add_all(funds + products)
        session.flush()
        rows = []
        financed: set[tuple[str, str]] = set()
        for office_index, officer_index, accounts in clients:
            officer = officers[officer_index] if officer_index is not None else None
            client = make_client(session, office=offices[office_index], officer=officer)
            for fund_index, product_index in accounts:
                if fund_index is not None and product_index is not None:
                    financed.add((f"F{fund_index}", f"P{product_index}"))
                session.add(
                    Account(
                        external_id=f"A{client.id}-{len(session.new)}-{fund_index}-{product_index}",
                        client_id=client.id,
                        kind="loan",
                        fund_id=funds[fund_index].id if fund_index is not None else None,
                        product_id=products[product_index].id if product_index is not None else None,
                        currency="KES",
                        balance=Decimal("0"),
                    )
                )
            session.flush()
            fund_indexes = sorted({f for f, _ in accounts if f is not None})
            product_indexes = sorted({p for _, p in accounts if p is not None})
            rows.append((client, fund_indexes, product_indexes))
        records = []
        for client_index, collected, band, score, lines, likelihood in surveys if rows else []:
            client = rows[client_index % len(rows)][0]
            survey = SurveyResponse(
                client_id=client.id,
                scorecard_id="KEN-2024",
                date_collected=collected,
                mode="self",
                channel="cli",
                headline_score=score,
                band=band,
            )
            session.add(survey)
            session.flush()
            rates = {line: likelihood / (position + 1) for position, line in enumerate(lines)}
            for line, rate in rates.items():
                session.add(SurveyLineResult(survey_id=survey.id, line_slug=line, score=score or 0, likelihood=rate))
            records.append(
                {"id": survey.id, "client": client.id, "date": collected, "band": band, "score": score, "lines": rates}
            )
        rebuild_facts(session)  # the surveys were written by hand, not through the survey service
        return World(offices, rows, records, {o.id: o.external_id for o in officers}, financed)


def _groups_of(world: World, level: str, client: Client, funds: list[int], products: list[int]) -> list[tuple]:
    if level == "all":
        return [("all", "All clients")]
    if level == "officer":
        return [(world.officer_ids[client.officer_id], None)] if client.officer_id else []
    if level == "fund":
        return [(f"F{index}", None) for index in funds]
    if level == "product":
        return [(f"P{index}", None) for index in products]
    by_id = {office.id: office for office in world.offices}
    office: Office | None = by_id[client.office_id]
    found = []
    while office is not None:
        if office.level == level:
            found.append((office.external_id, office.name))
        office = by_id.get(office.parent_id) if office.parent_id else None
    return found


def _brute_force(world: World, level: str, kind: str, k: int, scope: Scope | None) -> dict[tuple, dict]:
    members = _scoped_members(world, scope)
    by_client: dict[int, list[dict]] = defaultdict(list)
    for survey in world.surveys:
        if survey["client"] in members:
            by_client[survey["client"]].append(survey)
    cells: dict[tuple, dict] = {}
    for client_id, surveys in by_client.items():
        first = min(surveys, key=lambda s: (s["date"], s["id"]))
        per_period: dict[int, list[dict]] = defaultdict(list)
        for survey in surveys:
            per_period[_ordinal(survey["date"], kind)].append(survey)
        picked = {o: max(group, key=lambda s: (s["date"], s["id"])) for o, group in per_period.items()}
        client, funds, products = members[client_id]
        for group_id, _name in _groups_of(world, level, client, funds, products):
            if level == "fund" and scope and scope.funds is not None and group_id not in scope.funds:
                continue
            if level == "product" and scope and scope.funds is not None:  # only the products the funds finance
                if not any((fund, group_id) in world.financed for fund in scope.funds):
                    continue
            for ordinal, survey in picked.items():
                cell = cells.setdefault((group_id, ordinal), _empty_cell())
                _add(cell, survey, len(per_period[ordinal]), first, picked.get(ordinal - 1))
    return {key: _finish(cell, k) for key, cell in cells.items()}


def _scoped_members(world: World, scope: Scope | None) -> dict[int, tuple]:
    by_id = {office.id: office for office in world.offices}
    members = {}
    for client, funds, products in world.client_rows:
        if scope and scope.funds is not None and not {f"F{i}" for i in funds} & set(scope.funds):
            continue
        if scope and scope.offices is not None:
            path = by_id[client.office_id].path
            roots = [o.path for o in world.offices if o.external_id in scope.offices]
            if not any(path.startswith(root) for root in roots):
                continue
        members[client.id] = (client, funds, products)
    return members


def _ordinal(day: date, kind: str) -> int:
    if kind == "month":
        return day.year * 12 + day.month - 1
    if kind == "quarter":
        return day.year * 4 + (day.month - 1) // 3
    return day.year


def _empty_cell() -> dict:
    return {"clients": 0, "surveys": 0, "scores": [], "lines": defaultdict(list), "bands": defaultdict(int)}


def _add(cell: dict, survey: dict, surveys_in_period: int, first: dict, previous: dict | None) -> None:
    cell["clients"] += 1
    cell["surveys"] += surveys_in_period
    if survey["score"] is not None:
        cell["scores"].append(survey["score"])
    for line, rate in survey["lines"].items():
        cell["lines"][line].append(rate)
    if survey["band"] is not None:
        cell["bands"][survey["band"]] += 1
    cell.setdefault("first", defaultdict(int))
    cell.setdefault("previous", defaultdict(int))
    if first["id"] != survey["id"] and first["band"] and survey["band"]:
        cell["first"][(first["band"], survey["band"])] += 1
    if previous and previous["band"] and survey["band"]:
        cell["previous"][(previous["band"], survey["band"])] += 1


def _finish(cell: dict, k: int) -> dict:
    if cell["clients"] < k:
        return {"suppressed": True}
    scores = cell["scores"]
    return {
        "suppressed": False,
        "clients": cell["clients"],
        "surveys": cell["surveys"],
        "mean_score": sum(scores) / len(scores) if scores else None,
        "rates": {line: sum(values) / len(values) for line, values in cell["lines"].items()},
        "bands": dict(cell["bands"]),
        "first": {pair: n for pair, n in cell["first"].items()},
        "previous": {pair: n for pair, n in cell["previous"].items()},
    }


def _as_comparable(cell: Cell) -> dict:
    if cell.suppressed:
        return {"suppressed": True}
    return {
        "suppressed": False,
        "clients": cell.clients,
        "surveys": cell.surveys,
        "mean_score": cell.mean_score,
        "rates": cell.poverty_rates,
        "bands": cell.band_counts,
        "first": {(t.from_band, t.to_band): t.clients for t in cell.transitions_since_first},
        "previous": {(t.from_band, t.to_band): t.clients for t in cell.transitions_from_previous},
    }


def _assert_same(expected: dict, actual: dict) -> None:
    assert actual["suppressed"] == expected["suppressed"]
    if expected["suppressed"]:
        return
    for key in ("clients", "surveys", "bands", "first", "previous"):
        assert actual[key] == expected[key], key
    if expected["mean_score"] is None:
        assert actual["mean_score"] is None
    else:
        assert actual["mean_score"] == pytest.approx(expected["mean_score"], abs=0.006)
    assert actual["rates"].keys() == expected["rates"].keys()
    for line, rate in expected["rates"].items():
        assert actual["rates"][line] == pytest.approx(rate, abs=0.00006)


# A random MFI: its clients and their surveys, k and the period kind (both property tests below draw them).
WORLDS = {
    "clients": st.lists(client_strategy, max_size=8),
    "surveys": st.lists(survey_strategy, max_size=16),
    "k": st.integers(0, 3),
    "kind": st.sampled_from(["month", "quarter", "year"]),
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    **WORLDS,
    scope=st.sampled_from([None, Scope(funds=("F0",)), Scope(offices=("R1",)), Scope(funds=("F1",), offices=("KE",))]),
)
def test_sql_aggregates_match_a_brute_force_count(
    services: Services, clients: list, surveys: list, k: int, kind: str, scope: Scope | None
) -> None:
    _wipe(services)
    world = _build(services, clients, surveys)
    shown: dict[tuple[str, str, int], bool] = {}
    for level in LEVELS:
        expected = _brute_force(world, level, kind, k, scope)
        with services.transaction() as session:
            cells = compute(session, level=level, period_kind=kind, k=k, scope=scope)
        actual = {(cell.group_id, period_ordinal(cell.period, kind)): _as_comparable(cell) for cell in cells}
        assert actual.keys() == expected.keys(), level
        for key, cell in expected.items():
            shown[level, *key] = not actual[key]["suppressed"]
            if actual[key]["suppressed"] and not cell["suppressed"]:
                continue  # withheld as a complement: the subtraction check below says whether it had to be
            _assert_same(cell, actual[key])
    _assert_nothing_withheld_can_be_subtracted(world, kind, k, scope, shown)


def _assert_nothing_withheld_can_be_subtracted(
    world: World, kind: str, k: int, scope: Scope | None, shown: dict[tuple[str, str, int], bool]
) -> None:
    """For every shown office (and "all"), its clients less its shown children's are none or at least k; under a
    withheld office nothing is shown; "all" less the shown officers is none or at least k."""
    clients = {
        (level, group_id, ordinal): cell["clients"]
        for level in LEVELS
        for (group_id, ordinal), cell in _brute_force(world, level, kind, 0, scope).items()
    }
    by_id = {office.id: office for office in world.offices}
    parent_of = {
        ("all", "all"): None,
        **{
            (o.level, o.external_id): (by_id[o.parent_id].level, by_id[o.parent_id].external_id)
            if o.parent_id
            else ("all", "all")
            for o in world.offices
        },
    }
    officers = {(level, group_id) for level, group_id, _ in clients if level == "officer"}
    for (level, group_id, ordinal), count in clients.items():
        node = (level, group_id)
        if level in ("fund", "product", "officer"):
            continue
        kids = [child for child, parent in parent_of.items() if parent == node and (*child, ordinal) in clients]
        if not shown[level, group_id, ordinal]:
            assert not any(shown[*kid, ordinal] for kid in kids), (node, ordinal)
            continue
        left = count - sum(clients[*kid, ordinal] for kid in kids if shown[*kid, ordinal])
        assert left == 0 or left >= k, (node, ordinal, left)
        if node == ("all", "all"):
            present = [o for o in officers if (*o, ordinal) in clients]
            rest = count - sum(clients[*o, ordinal] for o in present if shown[*o, ordinal])
            assert rest == 0 or rest >= k, ("officers", ordinal, rest)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**WORLDS)
def test_the_feed_text_is_the_canonical_json_of_the_cells(
    services: Services, clients: list, surveys: list, k: int, kind: str
) -> None:
    """On PostgreSQL the database writes the feed's JSON; it must be the bytes Python writes of the same cells."""
    _wipe(services)
    _build(services, clients, surveys)
    with services.transaction() as session:
        groups = feed_groups(session, levels=LEVELS, period_kind=kind, k=k)
        cells = compute_levels(session, levels=LEVELS, period_kind=kind, k=k)
    assert groups.withheld == sum(cell.suppressed for level in LEVELS for cell in cells[level])
    for level in LEVELS:
        assert groups.by_level[level] == _groups_json(cells[level]), level


def _groups_json(cells: list[Cell]) -> list[str]:
    """The feed's groups of one level, from `compute`'s cells (ordered by group, then period)."""
    by_group: dict[str, dict] = {}
    for cell in cells:
        group = by_group.setdefault(cell.group_id, {"id": cell.group_id, "name": cell.group_name, "series": []})
        group["series"].append(
            {key: value for key, value in cell_to_json(cell).items() if key not in ("level", "group")}
        )
    return [canonical_json(group) for _id, group in sorted(by_group.items())]


def _seed_small_branch(services: Services, clients: int) -> list[int]:
    """`clients` clients in one branch, each surveyed twice in March 2026 (band A then B) and once in Feb (A)."""
    with services.transaction() as session:
        branch = make_office(session, external_id="BR", level="branch")
        ids = []
        for _ in range(clients):
            client = make_client(session, office=branch)
            for collected, band, score in ((date(2026, 2, 1), "A", 20), (date(2026, 3, 1), "A", 30)):
                session.add(_survey(client.id, collected, band, score))
            session.add(_survey(client.id, date(2026, 3, 20), "B", 60))
            ids.append(client.id)
        session.flush()
        rebuild_facts(session)
        return ids


def _survey(client_id: int, collected: date, band: str, score: int) -> SurveyResponse:
    return SurveyResponse(
        client_id=client_id,
        scorecard_id="KEN-2024",
        date_collected=collected,
        mode="self",
        channel="cli",
        headline_score=score,
        band=band,
    )


def test_a_client_surveyed_twice_in_a_month_counts_once_with_the_latest_survey(services: Services) -> None:
    _seed_small_branch(services, clients=5)
    with services.transaction() as session:
        [february, march] = compute(session, level="branch", period_kind="month", k=5)
    assert (march.period, march.clients, march.surveys, march.mean_score) == ("2026-03", 5, 10, 60.0)
    assert march.band_counts == {"B": 5}
    assert [(t.from_band, t.to_band, t.clients) for t in march.transitions_from_previous] == [("A", "B", 5)]
    assert [(t.from_band, t.to_band, t.clients) for t in march.transitions_since_first] == [("A", "B", 5)]
    assert (february.period, february.clients, february.transitions_since_first) == ("2026-02", 5, ())


def test_cells_under_k_clients_are_listed_as_withheld_without_numbers(services: Services) -> None:
    _seed_small_branch(services, clients=4)
    with services.transaction() as session:
        cells = compute(session, level="branch", period_kind="quarter", k=5)
    assert cells_to_json(cells) == [
        {"level": "branch", "group": {"id": "BR", "name": cells[0].group_name}, "period": "2026-Q1", "suppressed": True}
    ]


def test_periods_filter_keeps_transitions_from_the_period_before(services: Services) -> None:
    _seed_small_branch(services, clients=5)
    with services.transaction() as session:
        [march] = compute(session, level="branch", period_kind="month", k=1, periods=["2026-03"])
    assert march.transitions_from_previous[0].clients == 5


def test_bad_requests_get_a_clear_error(services: Services) -> None:
    with services.transaction() as session:
        with pytest.raises(AggregateError, match="not a quarter label"):
            compute(session, level="officer", period_kind="quarter", k=5, periods=["2026-03"])
        with pytest.raises(AggregateError, match="unknown level 'planet'"):
            compute(session, level="planet", period_kind="year", k=5)


@pytest.mark.parametrize(
    ("label", "kind"), [("2026-03", "month"), ("2026-01", "month"), ("2026-Q1", "quarter"), ("2026-Q4", "quarter")]
)
def test_period_labels_round_trip(label: str, kind: str) -> None:
    assert period_label(period_ordinal(label, kind), kind) == label
    assert period_ordinal(label, kind) - 1 == period_ordinal(period_label(period_ordinal(label, kind) - 1, kind), kind)
