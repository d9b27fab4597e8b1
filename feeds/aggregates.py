"""Poverty aggregates per office level, loan officer, fund and loan product, per period, computed in SQL.

One statement does the work on PostgreSQL and SQLite alike:

1. `ranked`: every survey with its period (an integer ordinal, so "the previous period" is `ordinal - 1`), the
   number of surveys the client had in that period, and the client's first survey ever (band and id).
2. `facts`: one row per client and period, the latest survey in it (ties -> highest id), with the band of the
   client's survey in the immediately preceding period, if any.
3. `partials`: additive sums (clients, surveys, score sums, band counts, band transitions, likelihood sums) per
   dimension key: the client's own office, loan officer, fund or product.
4. the roll-up: partials joined to the groups of each requested level (an office subtree by `Office.path` prefix,
   or the officer/fund/product itself) and summed again. Sums of sums are exact because a client sits in one
   office; fund and product memberships are many-to-many and are therefore never summed across keys.

Python then only turns a few aggregate rows per cell into `Cell` objects and withholds cells under k clients.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import (
    Integer,
    String,
    and_,
    cast,
    extract,
    func,
    literal,
    null,
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
    rows = session.execute(_statement(levels, period_kind, ordinals, scope)).tuples()
    cells = _cells_from_rows(rows, period_kind, k)
    return {level: cells.get(level, []) for level in levels}


def _tune_postgresql(session: Session) -> None:
    """For this transaction only: the CTE row estimates are poor, which makes PostgreSQL JIT-compile for seconds,
    and the window sorts and aggregates spill to disk at the default work_mem (measured in bench/bench_feed.py)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        # Walking the (client, date) index visits the heap in random order; a scan and one sort is much faster.
        session.execute(text("SET LOCAL enable_indexscan = off"))


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


def _dimension(level: str) -> str:
    return level if level in OTHER_LEVELS else "office"


def _statement(levels: Sequence[str], period_kind: str, ordinals: list[int] | None, scope: Scope | None) -> Select[Any]:
    facts = _facts(period_kind, scope)
    dimensions = sorted({_dimension(level) for level in levels})
    partials = _partials(facts, _members(dimensions), ordinals).cte("partials")
    groups = _groups(levels, scope).cte("groups")
    keys = (groups.c.level, groups.c.group_id, groups.c.group_name, partials.c.ord, partials.c.kind)
    return (
        select(
            *keys,
            partials.c.a,
            partials.c.b,
            func.sum(partials.c.n).label("n"),
            func.sum(partials.c.surveys).label("surveys"),
            func.sum(partials.c.value_sum).label("value_sum"),
            func.sum(partials.c.value_n).label("value_n"),
        )
        .join_from(partials, groups, and_(groups.c.dim == partials.c.dim, groups.c.key == partials.c.key))
        .group_by(*keys, partials.c.a, partials.c.b)
    )


def _facts(period_kind: str, scope: Scope | None) -> Any:
    survey = SurveyResponse.__table__
    ordinal = _ordinal_expression(survey.c.date_collected, period_kind).label("ord")
    in_period = (survey.c.client_id, ordinal)
    by_date = (survey.c.date_collected, survey.c.id)
    ranked_query = select(
        survey.c.id,
        survey.c.client_id,
        survey.c.headline_score,
        survey.c.band,
        ordinal,
        func.row_number()
        .over(partition_by=in_period, order_by=(survey.c.date_collected.desc(), survey.c.id.desc()))
        .label("rn"),
        func.count().over(partition_by=in_period).label("n_surveys"),
        func.first_value(survey.c.band).over(partition_by=survey.c.client_id, order_by=by_date).label("first_band"),
        func.first_value(survey.c.id).over(partition_by=survey.c.client_id, order_by=by_date).label("first_id"),
    )
    scoped = _scoped_clients(scope)
    if scoped is not None:
        ranked_query = ranked_query.where(survey.c.client_id.in_(scoped))
    ranked = ranked_query.cte("ranked")
    return (
        select(
            ranked.c.id,
            ranked.c.client_id,
            ranked.c.headline_score,
            ranked.c.band,
            ranked.c.ord,
            ranked.c.n_surveys,
            ranked.c.first_band,
            ranked.c.first_id,
            func.lag(ranked.c.band).over(partition_by=ranked.c.client_id, order_by=ranked.c.ord).label("prev_band"),
            func.lag(ranked.c.ord).over(partition_by=ranked.c.client_id, order_by=ranked.c.ord).label("prev_ord"),
        )
        .where(ranked.c.rn == 1)
        .cte("facts")
    )


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


def _members(dimensions: Iterable[str]) -> Any:
    """(dim, key, client_id): which key of each dimension a client counts under."""
    parts = []
    for dimension in dimensions:
        key: Any
        if dimension == "office":
            key, client_id, present = Client.office_id, Client.id, Client.office_id.is_not(None)
        elif dimension == "officer":
            key, client_id, present = Client.officer_id, Client.id, Client.officer_id.is_not(None)
        else:
            key = Account.fund_id if dimension == "fund" else Account.product_id
            client_id, present = Account.client_id, key.is_not(None)
        part = select(literal(dimension).label("dim"), key.label("key"), client_id.label("cid")).where(present)
        parts.append(part.distinct() if dimension in ("fund", "product") else part)
    return union_all(*parts).cte("members") if len(parts) > 1 else parts[0].cte("members")


def _partials(facts: Any, members: Any, ordinals: list[int] | None) -> Any:
    """Additive sums per (dim, key, period, kind, a, b); kind is base | band | first | previous | line."""
    joined_query = select(members.c.dim, members.c.key, *facts.c).join_from(
        facts, members, members.c.cid == facts.c.client_id
    )
    if ordinals is not None:
        joined_query = joined_query.where(facts.c.ord.in_(ordinals))
    joined = joined_query.cte("joined")  # computed once, read by every part below
    keys = (joined.c.dim, joined.c.key, joined.c.ord)
    no_text = cast(null(), String)
    zero = literal(0)

    def part(kind: str, a: Any, b: Any, surveys: Any, value_sum: Any, value_n: Any, *where: Any) -> Select[Any]:
        labels = [column for column in (a, b) if column is not no_text]
        return (
            select(
                *keys,
                literal(kind).label("kind"),
                a.label("a"),
                b.label("b"),
                func.count().label("n"),
                surveys.label("surveys"),
                value_sum.label("value_sum"),
                value_n.label("value_n"),
            )
            .where(*where)
            .group_by(*keys, *labels)
        )

    score = cast(joined.c.headline_score, Integer)
    has_band = joined.c.band.is_not(None)
    line = SurveyLineResult.__table__
    return union_all(
        part("base", no_text, no_text, func.sum(joined.c.n_surveys), func.sum(score), func.count(score)),
        part("band", joined.c.band, no_text, zero, zero, zero, has_band),
        part(
            "first",
            joined.c.first_band,
            joined.c.band,
            zero,
            zero,
            zero,
            joined.c.first_id != joined.c.id,
            joined.c.first_band.is_not(None),
            has_band,
        ),
        part(
            "previous",
            joined.c.prev_band,
            joined.c.band,
            zero,
            zero,
            zero,
            joined.c.prev_ord == joined.c.ord - 1,
            joined.c.prev_band.is_not(None),
            has_band,
        ),
        part(
            "line", line.c.line_slug, no_text, zero, func.sum(line.c.likelihood), func.count(line.c.likelihood)
        ).select_from(joined.join(line, line.c.survey_id == joined.c.id)),
    )


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


@dataclass
class _Sums:
    name: str = ""
    clients: int = 0
    surveys: int = 0
    score_sum: float = 0.0
    score_n: int = 0
    bands: dict[str, int] = field(default_factory=dict)
    lines: dict[str, tuple[float, int]] = field(default_factory=dict)
    since_first: list[Transition] = field(default_factory=list)
    previous: list[Transition] = field(default_factory=list)


def _cells_from_rows(rows: Iterable[Any], period_kind: str, k: int) -> dict[str, list[Cell]]:
    sums: dict[tuple[str, str, int], _Sums] = {}
    for level, group_id, name, ordinal, kind, a, b, n, surveys, value_sum, value_n in rows:
        key = (level, group_id, int(ordinal))
        cell = sums.get(key)
        if cell is None:
            cell = sums[key] = _Sums(name=name)
        _add_row(cell, kind, a, b, int(n or 0), surveys, value_sum, value_n)
    cells: dict[str, list[Cell]] = defaultdict(list)
    for (level, group_id, ordinal), cell in sorted(sums.items()):
        cells[level].append(_to_cell(level, group_id, period_label(ordinal, period_kind), cell, k))
    return cells


def _add_row(cell: _Sums, kind: str, a: str, b: str, count: int, surveys: Any, value_sum: Any, value_n: Any) -> None:
    if kind == "base":
        cell.clients = count
        cell.surveys = int(surveys or 0)
        cell.score_sum = float(value_sum or 0)
        cell.score_n = int(value_n or 0)
    elif kind == "band":
        cell.bands[a] = count
    elif kind == "line":
        cell.lines[a] = (float(value_sum or 0), int(value_n or 0))
    elif kind == "first":
        cell.since_first.append(Transition(a, b, count))
    elif kind == "previous":
        cell.previous.append(Transition(a, b, count))


def _to_cell(level: str, group_id: str, period: str, sums: _Sums, k: int) -> Cell:
    if sums.clients < k:
        return Cell(level=level, group_id=group_id, group_name=sums.name, period=period, suppressed=True)
    return Cell(
        level=level,
        group_id=group_id,
        group_name=sums.name,
        period=period,
        suppressed=False,
        clients=sums.clients,
        surveys=sums.surveys,
        mean_score=round(sums.score_sum / sums.score_n, 2) if sums.score_n else None,
        poverty_rates={slug: round(total / n, 4) for slug, (total, n) in sorted(sums.lines.items()) if n},
        band_counts=dict(sorted(sums.bands.items())),
        transitions_since_first=tuple(sorted(sums.since_first, key=_transition_order)),
        transitions_from_previous=tuple(sorted(sums.previous, key=_transition_order)),
    )


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
