"""Poverty aggregates per office level, loan officer, fund and loan product, per period, computed in SQL.

One statement does the work on PostgreSQL and SQLite alike:

1. `facts`: one row per client and period, the latest survey in it (ties -> highest id), the number of surveys the
   client had in it, the band of their first survey ever (when that is another survey) and the band of their latest
   survey in the immediately preceding period. All windows share one sort by (client, period, date, id). The
   poverty-line likelihoods of each chosen survey are pivoted into columns once, here.
2. `fine`: the measures summed per (leaf office, loan officer, period): a few rows per office, from which both the
   office levels and the officers roll up. Funds and products (many-to-many through accounts) are summed from the
   facts and each client's distinct memberships.
3. the roll-up: each requested group (an office subtree through a recursive ancestor walk, or the officer, fund or
   product itself) sums the partials of the keys under it. Sums of sums are exact because a client sits in one
   office and one officer; fund and product memberships are never summed across keys.

Every measure is a column (bands and poverty lines are read from the data first), so the result has one row per
cell and Python only turns those rows into `Cell` objects, withholding cells under k clients.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    Integer,
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
from sqlalchemy.sql.elements import BindParameter

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
    rows = session.execute(_statement(levels, period_kind, ordinals, scope, layout)).tuples()
    cells = _cells_from_rows(rows, period_kind, k, layout)
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
    """The measure columns of every partial and result row, in order: clients, surveys, score sum and count, one
    count per band, one per (from, to) band pair since the first survey and from the previous period, then a
    likelihood sum and count per poverty line. Bands and lines are the values present in the data."""

    bands: tuple[str, ...]
    slugs: tuple[str, ...]

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(before, after) for before in self.bands for after in self.bands]

    @property
    def width(self) -> int:
        return 4 + len(self.bands) + 2 * len(self.pairs) + 2 * len(self.slugs)


def _layout(session: Session) -> _Layout:
    survey, line = SurveyResponse.__table__, SurveyLineResult.__table__
    bands = session.scalars(select(survey.c.band).where(survey.c.band.is_not(None)).distinct())
    slugs = session.scalars(select(line.c.line_slug).distinct())
    return _Layout(tuple(sorted(bands)), tuple(sorted(slugs)))


def _dimension(level: str) -> str:
    return level if level in OTHER_LEVELS else "office"


def _statement(
    levels: Sequence[str], period_kind: str, ordinals: list[int] | None, scope: Scope | None, layout: _Layout
) -> Select[Any]:
    """Sums per leaf office and officer first (few rows), fund and product memberships separately, then every
    requested group sums the partials of the keys under it."""
    facts = _facts(period_kind, scope, ordinals, layout)
    dimensions = {_dimension(level) for level in levels}
    partials = _partials(facts, dimensions, layout).cte("partials")
    groups = _groups(levels, scope).cte("groups")
    keys = (groups.c.level, groups.c.group_id, groups.c.group_name, partials.c.ord)
    measures = [func.sum(partials.c[f"m{index}"]) for index in range(layout.width)]
    return (
        select(*keys, *measures)
        .join_from(partials, groups, and_(groups.c.dim == partials.c.dim, groups.c.key == partials.c.key))
        .group_by(*keys)
    )


def _facts(period_kind: str, scope: Scope | None, ordinals: list[int] | None, layout: _Layout) -> Any:
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
    by_client = {"partition_by": ranked.c.client_id, "order_by": (ranked.c.ord, ranked.c.date_collected, ranked.c.id)}
    stepped = select(
        *ranked.c,
        func.lag(ranked.c.band, back).over(**by_client).label("earlier_band"),
        func.lag(ranked.c.ord, back).over(**by_client).label("earlier_ord"),
    ).subquery("stepped")
    latest = or_(stepped.c.next_ord.is_(None), stepped.c.next_ord != stepped.c.ord)
    query = select(
        stepped.c.id,
        stepped.c.client_id,
        stepped.c.ord,
        stepped.c.n_surveys,
        stepped.c.headline_score,
        stepped.c.band,
        case((stepped.c.first_id != stepped.c.id, stepped.c.first_band)).label("first_band"),
        case((stepped.c.earlier_ord == stepped.c.ord - 1, stepped.c.earlier_band)).label("prev_band"),
    ).where(latest)
    if ordinals is not None:
        query = query.where(stepped.c.ord.in_(ordinals))
    return _with_lines(query.cte("chosen"), layout).cte("facts")


def _with_lines(chosen: Any, layout: _Layout) -> Select[Any]:
    """The chosen surveys with a likelihood sum and count column per poverty line (lines pivoted once, here)."""
    line = SurveyLineResult.__table__
    pivoted = []
    for index, slug in enumerate(layout.slugs):
        pivoted += [
            func.sum(case((line.c.line_slug == slug, line.c.likelihood), else_=0.0)).label(f"line_sum{index}"),
            _count_if(line.c.line_slug == slug).label(f"line_n{index}"),
        ]
    lines = (
        select(line.c.survey_id, *pivoted)
        .join_from(line, chosen, chosen.c.id == line.c.survey_id)
        .group_by(line.c.survey_id)
        .subquery("chosen_lines")
    )
    line_columns = [column for column in lines.c if column.name != "survey_id"]
    return select(*chosen.c, *line_columns).outerjoin(lines, lines.c.survey_id == chosen.c.id)


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


def _partials(facts: Any, dimensions: set[str], layout: _Layout) -> Any:
    """(dim, key, ord, m0..mN): additive measures per dimension key and period."""
    parts = []
    if dimensions & {"office", "officer"}:
        fine = _fine(facts, layout)
        for dimension, column in (("office", fine.c.office_id), ("officer", fine.c.officer_id)):
            if dimension in dimensions:
                measures = [func.sum(fine.c[f"m{index}"]) for index in range(layout.width)]
                parts.append(
                    select(literal(dimension).label("dim"), column.label("key"), fine.c.ord, *_named(measures))
                    .where(column.is_not(None))
                    .group_by(column, fine.c.ord)
                )
    for dimension in sorted(dimensions & {"fund", "product"}):
        members = _account_members(dimension)
        keys = (literal(dimension).label("dim"), members.c.key.label("key"))
        parts.append(_measured(facts, layout, keys, members, members.c.cid))
    return union_all(*parts)


def _fine(facts: Any, layout: _Layout) -> Any:
    """Measures per (leaf office, loan officer, period): office and officer roll-ups both start from here."""
    clients = Client.__table__
    dims = (clients.c.office_id, clients.c.officer_id)
    return _measured(facts, layout, dims, clients, clients.c.id).cte("fine")


def _account_members(dimension: str) -> Any:
    """(key, cid): the funds or products a client holds an account in, each once."""
    key = Account.fund_id if dimension == "fund" else Account.product_id
    query = select(key.label("key"), Account.client_id.label("cid")).where(key.is_not(None)).distinct()
    return query.subquery(f"{dimension}_members")


def _measured(facts: Any, layout: _Layout, keys: Sequence[Any], members: Any, client_id: Any) -> Select[Any]:
    """Facts joined to `members` (clients or account memberships), summed per `keys` (columns of `members`; a
    leading constant dimension name is selected but not grouped) and period."""
    selected = (*keys, facts.c.ord)
    grouped = [column for column in selected if not isinstance(getattr(column, "element", None), BindParameter)]
    query = select(*selected, *_named(_measures(facts, layout)))
    return query.join_from(facts, members, client_id == facts.c.client_id).group_by(*grouped)


def _measures(facts: Any, layout: _Layout) -> list[Any]:
    score = cast(facts.c.headline_score, Integer)
    measures = [func.count(), func.sum(facts.c.n_surveys), func.sum(score), func.count(score)]
    measures += [_count_if(facts.c.band == band) for band in layout.bands]
    for before_column in (facts.c.first_band, facts.c.prev_band):
        measures += [_count_if(and_(before_column == a, facts.c.band == b)) for a, b in layout.pairs]
    for index in range(len(layout.slugs)):
        measures += [func.sum(facts.c[f"line_sum{index}"]), func.sum(facts.c[f"line_n{index}"])]
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


def _cells_from_rows(rows: Iterable[Any], period_kind: str, k: int, layout: _Layout) -> dict[str, list[Cell]]:
    cells: dict[str, list[Cell]] = defaultdict(list)
    for level, group_id, name, ordinal, *measures in sorted(rows, key=lambda row: (*row[:2], int(row[3]))):
        period = period_label(int(ordinal), period_kind)
        cells[level].append(_to_cell(level, group_id, name, period, measures, k, layout))
    return cells


def _to_cell(
    level: str, group_id: str, name: str, period: str, measures: Sequence[Any], k: int, layout: _Layout
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
    line_sums = measures[previous_end::2]
    line_counts = measures[previous_end + 1 :: 2]
    rates = {
        slug: round(float(total) / int(n), 4)
        for slug, total, n in zip(layout.slugs, line_sums, line_counts, strict=True)
        if n
    }
    return Cell(
        level=level,
        group_id=group_id,
        group_name=name,
        period=period,
        suppressed=False,
        clients=int(clients),
        surveys=int(surveys),
        mean_score=round(float(score_sum) / int(score_n), 2) if score_n else None,
        poverty_rates=rates,
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
