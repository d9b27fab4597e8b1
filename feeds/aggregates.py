"""Poverty aggregates per office level, loan officer, fund and loan product, per period, computed in SQL.

The same statements run on PostgreSQL and SQLite:

1. `facts`, written to a temporary table (read several times; analyzed on PostgreSQL so its plans use the real row
   count): one row per client and period, the latest survey in it (ties -> highest id), the number of surveys the
   client had in it, the band of their first survey ever (when that is another survey), the band of their latest
   survey in the immediately preceding period, and the client's profile: leaf office, loan officer, and the funds
   and products they hold accounts in. All windows share one sort by (client, period, date, id).
2. `fine`: measures summed per profile and period (and poverty line, for the line statement), with one member
   client per row. Clients with the same profile count under exactly the same groups, so this is the finest grain
   any level needs, and it is small (thousands of rows per period, not one per client).
3. partials per leaf office, officer, fund and product (a profile's funds and products are its member's), then
   the roll-up: each requested group (an office subtree through a recursive ancestor walk, or the officer, fund or
   product itself) sums the partials of the keys under it.

Survey measures are columns (the bands present in the data are read first), so there is one result row per cell;
poverty lines come from a second statement with one row per cell and line. Python only turns those rows into
`Cell` objects, withholding cells under k clients.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    case,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from accounts.models import Account, Client, Fund, LoanProduct, Office, Staff
from surveys.models import SurveyLineResult, SurveyResponse

PeriodKind = Literal["month", "quarter", "year"]
PERIOD_KINDS: tuple[str, ...] = ("month", "quarter", "year")
OTHER_LEVELS: tuple[str, ...] = ("officer", "fund", "product")
ALL_LEVEL = "all"  # the whole MFI as one group


class AggregateError(ValueError):
    """A request for aggregates that cannot be answered (unknown level, malformed period label)."""


@dataclass(frozen=True)
class Scope:
    """Restricts aggregates to clients with an account in one of `funds` and/or in the subtree of one of `offices`
    (external ids; None = no restriction). Lender API keys carry one."""

    funds: tuple[str, ...] | None = None
    offices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Transition:
    from_band: str
    to_band: str
    clients: int


@dataclass(frozen=True)
class Cell:
    """One group (an office, officer, fund or product) in one period. A suppressed cell carries no numbers."""

    level: str
    group_id: str
    group_name: str
    period: str
    suppressed: bool
    clients: int | None = None
    surveys: int | None = None
    mean_score: float | None = None
    poverty_rates: dict[str, float] = field(default_factory=dict)
    band_counts: dict[str, int] = field(default_factory=dict)
    transitions_since_first: tuple[Transition, ...] = ()
    transitions_from_previous: tuple[Transition, ...] = ()


def compute(
    session: Session,
    *,
    level: str,
    period_kind: str,
    k: int,
    periods: list[str] | None = None,
    scope: Scope | None = None,
) -> list[Cell]:
    """Aggregates for one level ("country", "branch", ... any office level, or "officer" | "fund" | "product" |
    "all"), one row per group and period, ordered by group then period. Cells under `k` clients are withheld."""
    return compute_levels(session, levels=[level], period_kind=period_kind, k=k, periods=periods, scope=scope)[level]


def compute_levels(
    session: Session,
    *,
    levels: Sequence[str],
    period_kind: str,
    k: int,
    periods: list[str] | None = None,
    scope: Scope | None = None,
) -> dict[str, list[Cell]]:
    """Like `compute` for several levels at once, sharing the per-client work (the feed uses this)."""
    if period_kind not in PERIOD_KINDS:
        raise AggregateError(f"period must be one of {', '.join(PERIOD_KINDS)}, not {period_kind!r}")
    _check_levels(session, levels)
    ordinals = [period_ordinal(label, period_kind) for label in periods] if periods is not None else None
    _tune_postgresql(session)
    layout = _layout(session)
    with _materialized_facts(session, _facts(period_kind, scope, ordinals)) as facts:
        rows = session.execute(_survey_statement(levels, facts, scope, layout)).all()
        line_rows = session.execute(_line_statement(levels, facts, scope)).all()
    cells = _cells_from_rows(rows, _rates(line_rows), period_kind, k, layout)
    return {level: cells.get(level, []) for level in levels}


def _tune_postgresql(session: Session) -> None:
    """For this transaction only: the CTE row estimates are poor, which makes PostgreSQL JIT-compile for seconds,
    and the window sorts and aggregates spill to disk at the default work_mem (measured in bench/bench_feed.py)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        # Walking the (client, date) index visits the heap in random order; a scan and one sort is much faster.
        session.execute(text("SET LOCAL enable_indexscan = off"))
        # The estimate of one row per client and period is far off; a nested loop over it would take minutes.
        session.execute(text("SET LOCAL enable_nestloop = off"))


def office_levels(session: Session) -> list[str]:
    """The office levels in use, from the root down (ordered by their shallowest depth in the tree)."""
    depth = func.length(Office.path) - func.length(func.replace(Office.path, "/", ""))
    query = select(Office.level, func.min(depth)).group_by(Office.level).order_by(func.min(depth), Office.level)
    return [level for level, _ in session.execute(query)]


def available_levels(session: Session) -> list[str]:
    """Every level `compute` accepts for this MFI's data, root office level first."""
    return [*office_levels(session), *OTHER_LEVELS]


def _check_levels(session: Session, levels: Sequence[str]) -> None:
    known = {ALL_LEVEL, *available_levels(session)}
    unknown = [level for level in levels if level not in known]
    if unknown:
        raise AggregateError(f"unknown level {unknown[0]!r}; choose one of {', '.join(sorted(known))}")


# --- periods ---------------------------------------------------------------------------------------------------

_PERIOD_PATTERNS = {
    "month": re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$"),
    "quarter": re.compile(r"^(\d{4})-Q([1-4])$"),
    "year": re.compile(r"^(\d{4})$"),
}
_PER_YEAR = {"month": 12, "quarter": 4, "year": 1}


def period_ordinal(label: str, period_kind: str) -> int:
    """ "2026-03" -> 2026*12+2, "2026-Q3" -> 2026*4+2, "2026" -> 2026 (consecutive periods differ by one)."""
    match = _PERIOD_PATTERNS[period_kind].match(label)
    if not match:
        examples = {"month": "2026-03", "quarter": "2026-Q3", "year": "2026"}
        raise AggregateError(f"period {label!r} is not a {period_kind} label like {examples[period_kind]}")
    year = int(match.group(1))
    return year * _PER_YEAR[period_kind] + (int(match.group(2)) - 1 if period_kind != "year" else 0)


def period_label(ordinal: int, period_kind: str) -> str:
    year, index = divmod(ordinal, _PER_YEAR[period_kind])
    if period_kind == "month":
        return f"{year:04d}-{index + 1:02d}"
    if period_kind == "quarter":
        return f"{year:04d}-Q{index + 1}"
    return f"{year:04d}"


def _ordinal_expression(date_column: Any, period_kind: str) -> Any:
    year = cast(extract("year", date_column), Integer)
    month = cast(extract("month", date_column), Integer)
    if period_kind == "month":
        return year * 12 + month - 1
    if period_kind == "quarter":
        return year * 4 + (month - 1) // 3
    return year


# --- the statement ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """The survey measure columns of every partial and result row, in order: clients, surveys, score sum and count,
    one count per band, then one per (from, to) band pair since the first survey and from the previous period. The
    bands are the values present in the data."""

    bands: tuple[str, ...]

    @cached_property
    def pairs(self) -> list[tuple[str, str]]:
        return [(before, after) for before in self.bands for after in self.bands]

    @cached_property
    def width(self) -> int:
        return 4 + len(self.bands) + 2 * len(self.pairs)


def _layout(session: Session) -> _Layout:
    survey = SurveyResponse.__table__
    bands = session.scalars(select(survey.c.band).where(survey.c.band.is_not(None)).distinct())
    return _Layout(tuple(sorted(bands)))


def _dimension(level: str) -> str:
    return level if level in OTHER_LEVELS else "office"


_FACTS = Table(
    "feed_facts",
    MetaData(),
    Column("id", Integer),
    Column("client_id", Integer),
    Column("office_id", Integer),
    Column("officer_id", Integer),
    Column("funds", String),
    Column("products", String),
    Column("ord", Integer),
    Column("n_surveys", Integer),
    Column("headline_score", Integer),
    Column("band", String(64)),
    Column("first_band", String(64)),
    Column("prev_band", String(64)),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DROP",
)


@contextmanager
def _materialized_facts(session: Session, query: Select[Any]) -> Iterator[Table]:
    """The facts as a temporary table for the rest of the work: read several times, and on PostgreSQL analyzed, so
    the planner knows there is about one row per client and period (an estimate from the window query is ~20x too
    low and leads it to sort millions of rows for merge joins)."""
    connection = session.connection()
    _FACTS.drop(connection, checkfirst=True)
    _FACTS.create(connection)
    try:
        connection.execute(_FACTS.insert().from_select([column.name for column in _FACTS.c], query))
        if connection.dialect.name == "postgresql":
            connection.execute(text("ANALYZE feed_facts"))
        yield _FACTS
    finally:
        _FACTS.drop(connection)


def _survey_statement(levels: Sequence[str], facts: Any, scope: Scope | None, layout: _Layout) -> Select[Any]:
    """(level, group id, group name, period, measures...): one row per cell."""
    fine = _fine(facts, facts, _named(_survey_measures(facts, layout)), "fine")
    parts = _parts(levels, fine, layout.width)
    return _rolled_up(levels, scope, union_all(*parts).cte("partials"), [BigInteger] * layout.width)


def _line_statement(levels: Sequence[str], facts: Any, scope: Scope | None) -> Select[Any]:
    """(level, group id, group name, period, line, likelihood sum, count): one row per cell and poverty line, from
    the lines of the chosen surveys."""
    line = SurveyLineResult.__table__
    measures = (func.sum(line.c.likelihood).label("m0"), func.count(line.c.likelihood).label("m1"))
    joined = facts.join(line, line.c.survey_id == facts.c.id)
    fine = _fine(facts, joined, measures, "fine_lines", line.c.line_slug)
    parts = _parts(levels, fine, 2, fine.c.line_slug)
    return _rolled_up(levels, scope, union_all(*parts).cte("line_partials"), [Float, BigInteger], "line_slug")


def _fine(facts: Any, source: Any, measures: Sequence[Any], name: str, *extra_keys: Any) -> Any:
    """Measures per client profile (leaf office, loan officer, funds and products held) and period, with one
    client of the profile (whose memberships stand for all of them): every roll-up starts from these few rows."""
    keys = (facts.c.office_id, facts.c.officer_id, facts.c.funds, facts.c.products, facts.c.ord, *extra_keys)
    query = select(*keys, func.min(facts.c.client_id).label("member"), *measures).select_from(source)
    return query.group_by(*keys).cte(name)


def _parts(levels: Sequence[str], fine: Any, width: int, *extra_keys: Any) -> list[Select[Any]]:
    """(dim, key, ord, [extra keys], measures) per leaf office, officer, fund and product, summed from the fine
    rows; a profile counts under each fund and product its member holds an account in."""
    dimensions = {_dimension(level) for level in levels}
    measures = [func.sum(fine.c[f"m{index}"]) for index in range(width)]
    parts = []
    for dimension, column in (("office", fine.c.office_id), ("officer", fine.c.officer_id)):
        if dimension in dimensions:
            keys = (column, fine.c.ord, *extra_keys)
            selected = (literal(dimension).label("dim"), column.label("key"), fine.c.ord, *extra_keys)
            parts.append(select(*selected, *_named(measures)).where(column.is_not(None)).group_by(*keys))
    for dimension in ("fund", "product"):
        if dimension in dimensions:
            members = _account_members(dimension, select(fine.c.member))
            keys = (members.c.key, fine.c.ord, *extra_keys)
            selected = (literal(dimension).label("dim"), members.c.key, fine.c.ord, *extra_keys)
            query = select(*selected, *_named(measures)).join_from(fine, members, members.c.cid == fine.c.member)
            parts.append(query.group_by(*keys))
    return parts


def _rolled_up(
    levels: Sequence[str], scope: Scope | None, partials: Any, types: Sequence[Any], *extra: str
) -> Select[Any]:
    """Every requested group sums the partials of the dimension keys under it (cast back to `types`: PostgreSQL
    sums integers as numeric, which Python would read as slow Decimals)."""
    groups = _groups(levels, scope).cte("groups")
    keys = (groups.c.level, groups.c.group_id, groups.c.group_name, partials.c.ord, *(partials.c[e] for e in extra))
    measures = [cast(func.sum(partials.c[f"m{index}"]), type_) for index, type_ in enumerate(types)]
    return (
        select(*keys, *measures)
        .join_from(partials, groups, and_(groups.c.dim == partials.c.dim, groups.c.key == partials.c.key))
        .group_by(*keys)
    )


def _facts(period_kind: str, scope: Scope | None, ordinals: list[int] | None) -> Select[Any]:
    """One row per client and period: the latest survey in it (ties -> highest id), the number of surveys the
    client had in it, the band of the client's first survey ever when that is another survey, and the band of the
    latest survey of the immediately preceding period. All windows share one sort by (client, period, date, id)."""
    survey = SurveyResponse.__table__
    dated_query = select(
        survey.c.id,
        survey.c.client_id,
        survey.c.headline_score,
        survey.c.band,
        survey.c.date_collected,
        _ordinal_expression(survey.c.date_collected, period_kind).label("ord"),
    )
    scoped = _scoped_clients(scope)
    if scoped is not None:
        dated_query = dated_query.where(survey.c.client_id.in_(scoped))
    dated = dated_query.subquery("dated")
    in_order = (dated.c.ord, dated.c.date_collected, dated.c.id)
    ranked = select(
        *dated.c,
        func.count().over(partition_by=(dated.c.client_id, dated.c.ord)).label("n_surveys"),
        func.lead(dated.c.ord).over(partition_by=dated.c.client_id, order_by=in_order).label("next_ord"),
        func.first_value(dated.c.band).over(partition_by=dated.c.client_id, order_by=in_order).label("first_band"),
        func.first_value(dated.c.id).over(partition_by=dated.c.client_id, order_by=in_order).label("first_id"),
    ).subquery("ranked")
    # On the latest survey of a period, stepping back n_surveys rows lands on the latest one of an earlier period.
    back = cast(ranked.c.n_surveys, Integer)
    in_rank_order = (ranked.c.ord, ranked.c.date_collected, ranked.c.id)
    stepped = select(
        *ranked.c,
        func.lag(ranked.c.band, back)
        .over(partition_by=ranked.c.client_id, order_by=in_rank_order)
        .label("earlier_band"),
        func.lag(ranked.c.ord, back).over(partition_by=ranked.c.client_id, order_by=in_rank_order).label("earlier_ord"),
    ).subquery("stepped")
    latest = or_(stepped.c.next_ord.is_(None), stepped.c.next_ord != stepped.c.ord)
    clients = Client.__table__
    holdings = _holdings()
    query = select(
        stepped.c.id,
        stepped.c.client_id,
        clients.c.office_id,
        clients.c.officer_id,
        holdings.c.funds,
        holdings.c.products,
        stepped.c.ord,
        stepped.c.n_surveys,
        stepped.c.headline_score,
        stepped.c.band,
        case((stepped.c.first_id != stepped.c.id, stepped.c.first_band)).label("first_band"),
        case((stepped.c.earlier_ord == stepped.c.ord - 1, stepped.c.earlier_band)).label("prev_band"),
    ).join_from(stepped, clients, clients.c.id == stepped.c.client_id)
    query = query.outerjoin(holdings, holdings.c.client_id == stepped.c.client_id)
    query = query.where(latest)
    if ordinals is not None:
        query = query.where(stepped.c.ord.in_(ordinals))
    return query


def _scoped_clients(scope: Scope | None) -> Select[Any] | None:
    if scope is None or (scope.funds is None and scope.offices is None):
        return None
    query = select(Client.id)
    if scope.offices is not None:
        home, root = aliased(Office), aliased(Office)
        subtree = select(home.id).join(root, home.path.startswith(root.path)).where(root.external_id.in_(scope.offices))
        query = query.where(Client.office_id.in_(subtree))
    if scope.funds is not None:
        funded = select(Account.client_id).join(Fund, Fund.id == Account.fund_id)
        funded = funded.where(Fund.external_id.in_(scope.funds))
        query = query.where(Client.id.in_(funded))
    return query


def _holdings() -> Any:
    """(client_id, funds, products): the ids of the funds and products a client holds accounts in, as text; only
    used to tell profiles apart (any order or repetition is still an exact key: it lists exactly those ids)."""
    account = Account.__table__
    return (
        select(
            account.c.client_id,
            func.aggregate_strings(cast(account.c.fund_id, String), ",").label("funds"),
            func.aggregate_strings(cast(account.c.product_id, String), ",").label("products"),
        )
        .group_by(account.c.client_id)
        .subquery("holdings")
    )


def _account_members(dimension: str, clients: Select[Any]) -> Any:
    """(key, cid): the funds or products each of `clients` holds an account in, each once."""
    key = Account.fund_id if dimension == "fund" else Account.product_id
    query = select(key.label("key"), Account.client_id.label("cid")).where(key.is_not(None))
    return query.where(Account.client_id.in_(clients)).distinct().subquery(f"{dimension}_members")


def _survey_measures(facts: Any, layout: _Layout) -> list[Any]:
    score = cast(facts.c.headline_score, Integer)
    measures = [func.count(), func.sum(facts.c.n_surveys), func.sum(score), func.count(score)]
    measures += [_count_if(facts.c.band == band) for band in layout.bands]
    for before_column in (facts.c.first_band, facts.c.prev_band):
        measures += [_count_if(and_(before_column == a, facts.c.band == b)) for a, b in layout.pairs]
    return measures


def _count_if(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _named(measures: Sequence[Any]) -> list[Any]:
    return [measure.label(f"m{index}") for index, measure in enumerate(measures)]


def _groups(levels: Sequence[str], scope: Scope | None) -> Any:
    """(level, dim, key, group_id, group_name): the group of each requested level a dimension key rolls up into."""
    closure = _office_ancestors()
    parts = []
    for level in levels:
        if level in OTHER_LEVELS:
            parts.append(_other_groups(level, scope))
        elif level == ALL_LEVEL:
            everyone = (literal(ALL_LEVEL).label("group_id"), literal("All clients").label("group_name"))
            parts.append(
                select(literal(level).label("level"), literal("office").label("dim"), Office.id.label("key"), *everyone)
            )
        else:
            group = aliased(Office)
            parts.append(
                select(
                    literal(level).label("level"),
                    literal("office").label("dim"),
                    closure.c.office_id.label("key"),
                    group.external_id.label("group_id"),
                    group.name.label("group_name"),
                ).join(group, and_(group.id == closure.c.ancestor_id, group.level == level))
            )
    return union_all(*parts) if len(parts) > 1 else parts[0]


def _office_ancestors() -> Any:
    """(office_id, ancestor_id) for every office and each office above it, itself included: a recursive walk up
    `parent_id`, a few rows per office. (A `path LIKE ancestor.path || '%'` join would compare every pair.)"""
    start = select(Office.id.label("office_id"), Office.id.label("ancestor_id"), Office.parent_id.label("up"))
    closure = start.cte("office_ancestors", recursive=True)
    parent = aliased(Office)
    step = select(closure.c.office_id, parent.id, parent.parent_id).join(parent, parent.id == closure.c.up)
    return closure.union_all(step)


def _other_groups(level: str, scope: Scope | None) -> Select[Any]:
    table: Any = {"officer": Staff, "fund": Fund, "product": LoanProduct}[level]
    query = select(
        literal(level).label("level"),
        literal(level).label("dim"),
        table.id.label("key"),
        table.external_id.label("group_id"),
        table.name.label("group_name"),
    )
    if level == "fund" and scope is not None and scope.funds is not None:
        query = query.where(table.external_id.in_(scope.funds))
    return query


# --- rows -> cells ---------------------------------------------------------------------------------------------


def _rates(line_rows: Iterable[Any]) -> dict[tuple[str, str, int], dict[str, float]]:
    """Poverty rate per line of each cell, from (level, group id, name, period, line, likelihood sum, count)."""
    rates: dict[tuple[str, str, int], dict[str, float]] = defaultdict(dict)
    for level, group_id, _name, ordinal, slug, total, n in line_rows:
        if n:
            rates[(level, group_id, int(ordinal))][slug] = round(float(total) / int(n), 4)
    return rates


def _cells_from_rows(
    rows: Iterable[Any], rates: dict[tuple[str, str, int], dict[str, float]], period_kind: str, k: int, layout: _Layout
) -> dict[str, list[Cell]]:
    cells: dict[str, list[Cell]] = defaultdict(list)
    for level, group_id, name, ordinal, *measures in sorted(rows, key=lambda row: (*row[:2], int(row[3]))):
        period = period_label(int(ordinal), period_kind)
        cell_rates = rates.get((level, group_id, int(ordinal)), {})
        cells[level].append(_to_cell(level, group_id, name, period, measures, cell_rates, k, layout))
    return cells


def _to_cell(
    level: str,
    group_id: str,
    name: str,
    period: str,
    measures: Sequence[Any],
    rates: dict[str, float],
    k: int,
    layout: _Layout,
) -> Cell:
    clients, surveys, score_sum, score_n = (measure or 0 for measure in measures[:4])
    if clients < k:
        return Cell(level=level, group_id=group_id, group_name=name, period=period, suppressed=True)
    bands_end = 4 + len(layout.bands)
    first_end = bands_end + len(layout.pairs)
    previous_end = first_end + len(layout.pairs)
    band_counts = _nonzero(layout.bands, measures[4:bands_end])
    since_first = [Transition(a, b, n) for (a, b), n in _nonzero(layout.pairs, measures[bands_end:first_end]).items()]
    previous = [Transition(a, b, n) for (a, b), n in _nonzero(layout.pairs, measures[first_end:previous_end]).items()]
    return Cell(
        level=level,
        group_id=group_id,
        group_name=name,
        period=period,
        suppressed=False,
        clients=int(clients),
        surveys=int(surveys),
        mean_score=round(float(score_sum) / int(score_n), 2) if score_n else None,
        poverty_rates=dict(sorted(rates.items())),
        band_counts=band_counts,
        transitions_since_first=tuple(since_first),
        transitions_from_previous=tuple(previous),
    )


def _nonzero(names: Sequence[Any], counts: Sequence[Any]) -> dict[Any, int]:
    return {name: int(n) for name, n in zip(names, counts, strict=True) if n}


def _transition_order(transition: Transition) -> tuple[str, str]:
    return transition.from_band, transition.to_band


# --- JSON ------------------------------------------------------------------------------------------------------


def cell_to_json(cell: Cell) -> dict[str, Any]:
    """A cell as plain JSON; a suppressed cell says so and carries no numbers."""
    head: dict[str, Any] = {
        "level": cell.level,
        "group": {"id": cell.group_id, "name": cell.group_name},
        "period": cell.period,
        "suppressed": cell.suppressed,
    }
    if cell.suppressed:
        return head
    return head | {
        "clients": cell.clients,
        "surveys": cell.surveys,
        "mean_score": cell.mean_score,
        "poverty_rate": cell.poverty_rates,
        "band_counts": cell.band_counts,
        "band_transitions": {
            "since_first_survey": [_transition_json(t) for t in cell.transitions_since_first],
            "from_previous_period": [_transition_json(t) for t in cell.transitions_from_previous],
        },
    }


def cells_to_json(cells: Iterable[Cell]) -> list[dict[str, Any]]:
    """`compute`'s result as a JSON-ready list (for `GET /api/v1/aggregates` and the feed)."""
    return [cell_to_json(cell) for cell in cells]


def _transition_json(transition: Transition) -> dict[str, Any]:
    return {"from": transition.from_band, "to": transition.to_band, "clients": transition.clients}
