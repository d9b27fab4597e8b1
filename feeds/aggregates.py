"""Poverty aggregates per office level, loan officer, fund and loan product, per period, computed in SQL.

They are read from the profile sums (`feeds/sums.py`): per client profile (leaf office, loan officer, funds and
products held, one integer) and period, the measures of its clients, summed from `feed_facts` (`feeds/facts.py`:
one row per client and period with the survey that counts, its band, the client's band transitions and the
poverty-line likelihoods), both kept up to date for every reader, so a build never ranks surveys, joins
poverty-line rows or passes over one row per client. One statement, the same on PostgreSQL and SQLite:

1. `fine`: the profile sums of the period kind, one row per profile and period with one member client. Clients
   with the same profile count under exactly the same groups, so this is the finest grain any level needs, and it
   is small (thousands of rows per period, not one per client).
2. partials per office, officer, fund and product (a profile's are its member's). The officer, fund and product
   partials are their cells; office totals are summed one depth of the tree at a time, from the deepest offices up
   (`parent_id`), so moving an office needs no change to the facts.

Measures are columns: counts per band and band pair (the bands known to `feed_keys`), clients per poverty-line set
and one likelihood sum per poverty line (each fact's `line_N` column picked by its line set), so there is one
result row per cell whichever scorecards its clients took. Python withholds cells under k clients and makes `Cell`s
for the API and the /impact page. For the feed, PostgreSQL writes most of each cell's JSON text itself
(`_points_in_sql`) and streams it to Python, which adds the mean score and poverty rates (`_finished_points`) and
puts the texts together; on other databases Python writes the same bytes (`_points_in_python`).
"""

from __future__ import annotations

import gc
import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, reduce
from operator import itemgetter
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Text,
    case,
    cast,
    func,
    literal,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql import Select

from accounts.models import Account, Client, Fund, LoanProduct, Office, Staff
from feeds import complementary, sums
from feeds import layout as layouts
from feeds.layout import AggregateError as AggregateError  # raised by this module too; callers catch it from here
from feeds.layout import AggregatesUnavailable as AggregatesUnavailable
from feeds.layout import Layout
from feeds.models import PERIOD_KINDS, feed_facts, feed_profile_sums

T = TypeVar("T")
OTHER_LEVELS: tuple[str, ...] = ("officer", "fund", "product")
ALL_LEVEL = "all"  # the whole MFI as one group


@dataclass(frozen=True)
class Scope:
    """Restricts aggregates to clients with an account in one of `funds` and/or in the subtree of one of `offices`
    (external ids; None = no restriction), and to the ids `clients` selects (a SELECT of client ids; None = no
    restriction). Lender API keys carry one, with the clients who share their data with that lender: a cell that
    also counted the others would give away a revoked client's band, less the bands of the clients the lender sees."""

    funds: tuple[str, ...] | None = None
    offices: tuple[str, ...] | None = None
    clients: Any = None


class Transition(NamedTuple):
    """How many of a cell's clients moved from one band to another (a tuple: a feed makes ~10 per cell)."""

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
    """Like `compute` for several levels at once, from one statement. Every office level and "all" are computed
    whatever is asked, so that the complements withheld (`feeds/complementary.py`) are the same in every answer."""
    with collector_paused():

        def cell_rows(layout: Layout, statement: Any) -> list[Any]:
            return sorted(session.connection().execute(statement), key=_CELL)

        everything = _with_the_trees(session, levels)
        layout, rows = _read_consistently(session, everything, period_kind, periods, scope, cell_rows)
        hidden = _withheld(session, [(row[0], row[1], row[3], row[4]) for row in rows], k)
        by_level: dict[str, list[Cell]] = {level: [] for level in levels}
        for row in rows:
            if row[0] in by_level:
                period = period_label(row[3], period_kind)
                withhold = (row[0], row[1], row[3]) in hidden
                by_level[row[0]].append(_to_cell(row[0], row[1], row[2], period, row[4:], k, layout, withhold))
    return by_level


def _with_the_trees(session: Session, levels: Sequence[str]) -> list[str]:
    """`levels` with every office level and "all": the complements need the whole tree to subtract from."""
    trees = [*office_levels(session), ALL_LEVEL] if any(level not in ("fund", "product") for level in levels) else []
    return list(dict.fromkeys([*levels, *trees]))


def _withheld(session: Session, cells: Iterable[tuple[str, str, int, int]], k: int) -> set[tuple[str, str, int]]:
    """The cells to withhold, under k clients or as their complements: the office tree under "all", and the
    officers under "all", each on its own (`feeds/complementary.py`)."""
    offices: dict[tuple[str, str, int], int] = {}
    officers: dict[tuple[str, str, int], int] = {}
    for level, group_id, ordinal, clients in cells:
        if level == ALL_LEVEL:
            offices[level, group_id, ordinal] = officers[level, group_id, ordinal] = clients
        elif level == "officer":
            officers[level, group_id, ordinal] = clients
        elif level not in OTHER_LEVELS:
            offices[level, group_id, ordinal] = clients
    root = (ALL_LEVEL, ALL_LEVEL)
    office_parents = _office_parents(session, root)
    officer_parents: dict[tuple[str, str], tuple[str, str] | None] = {root: None}
    officer_parents |= {(level, group_id): root for level, group_id, _ordinal in officers if level == "officer"}
    return complementary.withheld(offices, office_parents, k) | complementary.withheld(officers, officer_parents, k)


def _office_parents(session: Session, root: tuple[str, str]) -> dict[tuple[str, str], tuple[str, str] | None]:
    parent = aliased(Office)
    query = select(Office.level, Office.external_id, parent.level, parent.external_id).outerjoin(
        parent, parent.id == Office.parent_id
    )
    parents: dict[tuple[str, str], tuple[str, str] | None] = {root: None}
    for level, external_id, parent_level, parent_external_id in session.execute(query):
        parents[level, external_id] = (parent_level, parent_external_id) if parent_external_id is not None else root
    return parents


class FeedGroups(NamedTuple):
    """The feed's form of `compute_levels`: per level, the canonical JSON text (`canonical_json`) of each group,
    {"id", "name", "series"} with the series over the periods, ordered by group id; and how many cells are withheld."""

    by_level: dict[str, list[str]]
    withheld: int


def feed_groups(
    session: Session, *, levels: Sequence[str], period_kind: str, k: int, periods: list[str] | None = None
) -> FeedGroups:
    """The feed's groups as text, each cell's JSON from `_points`."""
    with collector_paused():

        def grouped_points(layout: Layout, statement: Any) -> tuple[dict[tuple[str, str], Any], int]:
            groups: dict[tuple[str, str], tuple[str, list[tuple[int, str]]]] = {}
            withheld = 0
            points = list(_points(session, statement, layout, period_kind, k))
            hidden = _withheld(session, [(point[0], point[1], point[3], point[6]) for point in points], k)
            for level, group_id, name, ordinal, suppressed, text, _clients in points:
                group = groups.get((level, group_id))
                if group is None:
                    group = groups[level, group_id] = (name, [])
                if not suppressed and (level, group_id, ordinal) in hidden:  # a complement: withheld too
                    text, suppressed = (
                        canonical_json({"period": period_label(ordinal, period_kind), "suppressed": True}),
                        True,
                    )
                group[1].append((ordinal, text))
                withheld += suppressed
            return groups, withheld

        everything = _with_the_trees(session, levels)
        _layout, (groups, withheld) = _read_consistently(
            session, everything, period_kind, periods, None, grouped_points
        )
        by_level: dict[str, list[str]] = {level: [] for level in levels}
        for level, group_id in sorted(groups):
            if level not in by_level:
                continue
            name, series = groups[level, group_id]
            series.sort()  # by period (one point per period)
            head = f'{{"id":{_json_string(group_id)},"name":{_json_string(name)},"series":['
            by_level[level].append(head + ",".join([text for _ordinal, text in series]) + "]}")
    return FeedGroups(by_level, withheld)


def _points(
    session: Session, statement: Any, layout: Layout, period_kind: str, k: int
) -> Iterable[tuple[str, str, str, int, bool, str, int]]:
    """(level, group id, name, period ordinal, withheld, the cell's JSON text, clients) per cell, in no order.

    On PostgreSQL the database writes most of each cell's JSON (`_points_in_sql`: at 1M clients, 65,000 cells took
    0.7 s as dicts in Python and another 0.8 s through json.dumps) and the rows are streamed from psycopg's cursor
    in chunks, so Python adds the numbers that are not integers (`_finished_points`) while the database still works
    out the later levels (2 cores). Elsewhere each cell's JSON is `_to_point` through `canonical_json`: the same
    bytes (tests/integration/test_aggregates.py)."""
    connection = session.connection()
    if connection.dialect.name != "postgresql":
        return _points_in_python(connection.execute(statement), layout, period_kind, k)
    query = _points_in_sql(statement, layout, k)
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    cursor = connection.connection.driver_connection.cursor(binary=True)  # type: ignore[union-attr]
    return _finished_points(_streamed(cursor, str(compiled), compiled.params), layout, period_kind, k)


def _streamed(cursor: Any, sql: str, parameters: dict[str, Any]) -> Iterator[Any]:
    """The rows of the query, 2,000 at a time as the database sends them; the cursor closed at the end."""
    with cursor:
        yield from cursor.stream(sql, parameters, size=2000)


_CELL = itemgetter(0, 1, 3)  # level, group id, period ordinal
READ_ATTEMPTS = 3  # reads of the profile sums, when a new layout's sums were committed during the previous one


def _read_consistently(
    session: Session,
    levels: Sequence[str],
    period_kind: str,
    periods: list[str] | None,
    scope: Scope | None,
    read: Callable[[Layout, Any], T],
) -> tuple[Layout, T]:
    """`read(layout, statement)` of the aggregates, again if sums of another layout were committed while it ran
    (`feeds/sums.py`), at most READ_ATTEMPTS times."""
    for _attempt in range(READ_ATTEMPTS):
        layout, layout_id, statement = _prepared(session, levels, period_kind, periods, scope)
        result = read(layout, statement)
        if sums.only_in(session, layout_id):
            return layout, result
    raise AggregatesUnavailable("new bands or poverty lines kept arriving while the aggregates were read; try again")


def _prepared(
    session: Session, levels: Sequence[str], period_kind: str, periods: list[str] | None, scope: Scope | None
) -> tuple[Layout, int, Any]:
    """The layout, its id and the statement of (level, group id, group name, period ordinal, measures...): one row
    per cell with clients. The profile sums are brought up to date first (`feeds/sums.py`)."""
    if period_kind not in PERIOD_KINDS:
        raise AggregateError(f"period must be one of {', '.join(PERIOD_KINDS)}, not {period_kind!r}")
    _check_levels(session, levels)
    ordinals = [period_ordinal(label, period_kind) for label in periods] if periods is not None else None
    _tune_postgresql(session)
    layout, layout_id = sums.current(session)
    statement = _statement(levels, period_kind, ordinals, scope, layout, layout_id, _deepest_office(session))
    return layout, layout_id, statement


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off for a block that allocates many small objects and no cycles (fetching rows,
    making cells or JSON of them): collections triggered by those allocations took 60% of that time, and the first
    collection after the block another 0.35 s at 1M clients (bench/bench_feed.py), so the objects made meanwhile go
    straight to the oldest generation."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # moves every tracked object to the oldest generation in O(1), instead of the first collection
        gc.unfreeze()  # after the block walking them all (0.35 s for a feed at 1M clients)
        if was_enabled:
            gc.enable()


def _tune_postgresql(session: Session) -> None:
    """For this transaction only (measured in bench/bench_feed.py): JIT compiling the wide aggregate costs more than
    it saves; its hash table (one entry per profile and period) spills to disk at the default work_mem; and the row
    estimates of the CTEs are far off (the recursive office walk by 20x), which makes PostgreSQL sort a quarter of a
    million wide rows for the roll-up where hashing them is twice as fast."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))
        session.execute(text("SET LOCAL work_mem = '256MB'"))
        session.execute(text("SET LOCAL enable_sort = off"))


def office_levels(session: Session) -> list[str]:
    """The office levels in use, from the root down (ordered by their shallowest depth in the tree)."""
    depth = func.length(Office.path) - func.length(func.replace(Office.path, "/", ""))
    query = select(Office.level, func.min(depth)).group_by(Office.level).order_by(func.min(depth), Office.level)
    return [level for level, _ in session.execute(query)]


def _office_depths() -> Any:
    """(office_id, depth): roots 0, their children 1, ...: a recursive walk down `parent_id`, the link the roll-up
    follows up."""
    office = Office.__table__
    start = select(office.c.id.label("office_id"), literal(0).label("depth")).where(office.c.parent_id.is_(None))
    depths = start.cte("office_depths", recursive=True)
    step = select(office.c.id, depths.c.depth + 1).join(depths, office.c.parent_id == depths.c.office_id)
    return depths.union_all(step)


def _deepest_office(session: Session) -> int:
    depths = _office_depths()
    return session.scalar(select(func.max(depths.c.depth))) or 0


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


@cache
def period_label(ordinal: int, period_kind: str) -> str:
    year, index = divmod(ordinal, _PER_YEAR[period_kind])
    if period_kind == "month":
        return f"{year:04d}-{index + 1:02d}"
    if period_kind == "quarter":
        return f"{year:04d}-Q{index + 1}"
    return f"{year:04d}"


# --- the statement ---------------------------------------------------------------------------------------------


def _statement(
    levels: Sequence[str],
    period_kind: str,
    ordinals: list[int] | None,
    scope: Scope | None,
    layout: Layout,
    layout_id: int,
    deepest: int,
) -> Any:
    """(level, group id, group name, period, measures...): one row per cell."""
    fine = _fine(period_kind, ordinals, scope, layout, layout_id).cte("fine")
    one_member = select(fine.c.profile_id, func.min(fine.c.member).label("member")).group_by(fine.c.profile_id)
    members = one_member.cte("members")
    types = layout.partial_types
    cells = []
    office_levels = [level for level in levels if level not in OTHER_LEVELS]
    if office_levels:
        office_partials = _part("office", fine, members, types).cte("office_partials")
        cells += _office_cells(office_levels, office_partials, types, deepest)
    for level in (level for level in levels if level in OTHER_LEVELS):
        partials = _part(level, fine, members, types).subquery(f"{level}_partials")
        cells.append(_other_cells(level, partials, types, scope))
    return union_all(*cells)


def _fine(
    period_kind: str, ordinals: list[int] | None, scope: Scope | None, layout: Layout, layout_id: int
) -> Select[Any]:
    """Measures per client profile and period, from the profile sums (`feeds/sums.py`: one row per profile and
    period, summed from the facts), with one client of the profile, whose office, officer and accounts stand for all
    of them: every roll-up starts from these few rows."""
    if scope is not None and scope.clients is not None:
        return _fine_per_client(period_kind, ordinals, scope, layout)
    table = feed_profile_sums
    generic = [table.c[f"count_{index}"] for index in range(layout.counts - 4)]
    lines = [table.c[f"line_sum_{index}"] for index in range(len(layout.slugs))]
    columns = [table.c.clients, table.c.surveys, table.c.score_sum, table.c.score_n, *generic, *lines]
    query = select(table.c.profile_id, table.c.ord, table.c.member, *_named(columns))
    query = query.where(table.c.period_kind == period_kind, table.c.layout_id == layout_id)
    if ordinals is not None:
        query = query.where(table.c.ord.in_(ordinals))
    scoped = _scoped_clients(scope)
    if scoped is not None:
        query = query.where(table.c.member.in_(scoped))  # a profile's clients share office and funds
    return query


def _fine_per_client(period_kind: str, ordinals: list[int] | None, scope: Scope, layout: Layout) -> Select[Any]:
    """The same rows as `_fine`, each client its own profile, summed from the facts of the clients `scope` selects:
    the clients of one profile share office and funds but not consent, so the kept sums cannot serve here."""
    facts = feed_facts
    query = select(facts.c.client_id.label("profile_id"), facts.c.ord, facts.c.client_id.label("member"))
    query = query.add_columns(*_named(layouts.measures(facts, layout)))
    query = query.where(facts.c.period_kind == period_kind, facts.c.client_id.in_(scope.clients))
    if ordinals is not None:
        query = query.where(facts.c.ord.in_(ordinals))
    scoped = _scoped_clients(scope)
    if scoped is not None:
        query = query.where(facts.c.client_id.in_(scoped))
    return query.group_by(facts.c.client_id, facts.c.ord)


def _part(dimension: str, fine: Any, members: Any, types: Sequence[Any]) -> Select[Any]:
    """(key, ord, measures) per office, officer, fund or product, summed from the fine rows: a profile counts under
    its member's office and officer and each fund and product the member holds."""
    keys = _profile_keys(dimension, members)
    measures = _named([cast(func.sum(fine.c[f"m{index}"]), type_) for index, type_ in enumerate(types)])
    query = select(keys.c.key, fine.c.ord, *measures)
    return query.join_from(fine, keys, keys.c.profile_id == fine.c.profile_id).group_by(*query.selected_columns[:2])


def _profile_keys(dimension: str, members: Any) -> Any:
    """(profile_id, key): the office or officer of each profile's member, or each fund or product it holds (once)."""
    clients, account = Client.__table__, Account.__table__
    if dimension in ("office", "officer"):
        column = clients.c[f"{dimension}_id"]
        query = select(members.c.profile_id, column.label("key")).join(clients, clients.c.id == members.c.member)
    else:
        column = account.c[f"{dimension}_id"]
        query = select(members.c.profile_id, column.label("key")).join(account, account.c.client_id == members.c.member)
        query = query.distinct()
    return query.where(column.is_not(None)).subquery(f"{dimension}_keys")


def _office_cells(levels: Sequence[str], partials: Any, types: Sequence[Any], deepest: int) -> list[Select[Any]]:
    """The cells of the office levels (and "all"), rolled up the tree one depth at a time from the deepest offices:
    the totals at each depth are the partials of its offices plus the totals of their children. Summing children's
    totals instead of every office under each group sums a third of the rows at 1M clients (bench/bench_feed.py).
    The deepest offices have no children: their totals are their partials, not summed again."""
    office = Office.__table__
    depths = _office_depths()
    tiers: list[Any] = []
    for tier_depth in range(deepest, -1, -1):
        own = select(partials.c.key, *_keyed(partials, types, "ord"))
        own = own.join_from(partials, depths, depths.c.office_id == partials.c.key).where(depths.c.depth == tier_depth)
        if not tiers:
            tiers.append(own.cte(f"depth_{tier_depth}"))
            continue
        below = tiers[-1]
        lifted = select(office.c.parent_id, *_keyed(below, types, "ord"))
        lifted = lifted.join_from(below, office, office.c.id == below.c.key)
        tiers.append(_summed(union_all(own, lifted).subquery(), types, "key", "ord").cte(f"depth_{tier_depth}"))
    cells = [
        select(office.c.level, office.c.external_id, office.c.name, *_keyed(tier, types, "ord"))
        .join_from(tier, office, office.c.id == tier.c.key)
        .where(office.c.level.in_([level for level in levels if level != ALL_LEVEL]))
        for tier in tiers
    ]
    if ALL_LEVEL in levels:
        everyone = _summed(tiers[-1], types, "ord").subquery("everyone")
        head = (literal(ALL_LEVEL), literal(ALL_LEVEL), literal("All clients"))
        cells.append(select(*head, *_keyed(everyone, types, "ord")))
    return cells


def _summed(rows: Any, types: Sequence[Any], *keys: str) -> Select[Any]:
    """The measures of `rows` summed per `keys`, cast back to `types` (PostgreSQL sums 4-byte integers into 8-byte
    ones and those into numerics, which Python would read as slow Decimals)."""
    measures = [cast(func.sum(rows.c[f"m{index}"]), type_).label(f"m{index}") for index, type_ in enumerate(types)]
    return select(*(rows.c[key] for key in keys), *measures).group_by(*(rows.c[key] for key in keys))


def _keyed(rows: Any, types: Sequence[Any], *keys: str) -> list[Any]:
    """The `keys` columns of `rows`, then its measures."""
    return [*(rows.c[key] for key in keys), *(rows.c[f"m{index}"] for index in range(len(types)))]


def _other_cells(level: str, partials: Any, types: Sequence[Any], scope: Scope | None) -> Select[Any]:
    """The cells of an officer, fund or product level: its partials, named. A lender limited to funds sees those
    funds and the products they finance."""
    table: Any = {"officer": Staff, "fund": Fund, "product": LoanProduct}[level]
    query = select(literal(level), table.external_id, table.name, *_keyed(partials, types, "ord"))
    query = query.join_from(partials, table, table.id == partials.c.key)
    if level == "fund" and scope is not None and scope.funds is not None:
        query = query.where(table.external_id.in_(scope.funds))
    if level == "product" and scope is not None and scope.funds is not None:  # not the products of others' funds
        financed = select(Account.product_id).join(Fund, Fund.id == Account.fund_id)
        query = query.where(table.id.in_(financed.where(Fund.external_id.in_(scope.funds))))
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


def _named(measures: Sequence[Any]) -> list[Any]:
    return [measure.label(f"m{index}") for index, measure in enumerate(measures)]


# --- rows -> cells ---------------------------------------------------------------------------------------------


def _to_cell(
    level: str,
    group_id: str,
    name: str,
    period: str,
    measures: Sequence[Any],
    k: int,
    layout: Layout,
    withhold: bool = False,
) -> Cell:
    if withhold or measures[0] < k:
        return Cell(level=level, group_id=group_id, group_name=name, period=period, suppressed=True)
    pairs = layout.pair_labels
    return Cell(
        level=level,
        group_id=group_id,
        group_name=name,
        period=period,
        suppressed=False,
        clients=measures[0],
        surveys=measures[1],
        mean_score=_mean_score(measures),
        poverty_rates=_rates(measures, layout),
        band_counts=_nonzero(layout.band_labels, measures[layout.band_columns]),
        transitions_since_first=_transitions(pairs, measures[layout.first_columns]),
        transitions_from_previous=_transitions(pairs, measures[layout.previous_columns]),
    )


def _points_in_python(
    rows: Iterable[Any], layout: Layout, period_kind: str, k: int
) -> list[tuple[str, str, str, int, bool, str, int]]:
    """(level, group id, name, period ordinal, withheld, the cell's JSON text, clients) per row of the statement."""
    points = []
    for level, group_id, name, ordinal, *measures in rows:
        point = _to_point(period_label(ordinal, period_kind), measures, k, layout)
        points.append((level, group_id, name, ordinal, point["suppressed"], canonical_json(point), measures[0]))
    return points


def _to_point(period: str, measures: Sequence[Any], k: int, layout: Layout) -> dict[str, Any]:
    """`cell_to_json` without the level and group, straight from the measures."""
    if measures[0] < k:
        return {"period": period, "suppressed": True}
    pairs = layout.pair_labels
    return _point_json(
        period,
        measures[0],
        measures[1],
        _mean_score(measures),
        _rates(measures, layout),
        _nonzero(layout.band_labels, measures[layout.band_columns]),
        _moves_json(pairs, measures[layout.first_columns]),
        _moves_json(pairs, measures[layout.previous_columns]),
    )


def _mean_score(counts: Sequence[int]) -> float | None:
    score_sum, score_n = counts[2], counts[3]
    return round(score_sum / score_n, 2) if score_n else None


def _nonzero(names: Sequence[str], counts: Sequence[int]) -> dict[str, int]:
    return {name: n for name, n in zip(names, counts, strict=True) if n}


def _transitions(pairs: Sequence[tuple[str, str]], counts: Sequence[int]) -> tuple[Transition, ...]:
    return tuple(Transition(before, after, n) for (before, after), n in zip(pairs, counts, strict=True) if n)


def _rates(measures: Sequence[Any], layout: Layout) -> dict[str, float]:
    """Poverty rate per line (slug order): its likelihood sum over the clients of the line sets that have it."""
    rates = {}
    for slug, columns, total in zip(layout.slugs, layout.slug_clients, measures[layout.counts :], strict=True):
        clients = sum(measures[column] for column in columns)
        if clients:
            rates[slug] = round(total / clients, 4)
    return rates


# --- the feed's JSON in SQL (PostgreSQL) ------------------------------------------------------------------------


def _points_in_sql(statement: Any, layout: Layout, k: int) -> Select[Any]:
    """(level, group id, name, period ordinal, clients, surveys, score sum, score count, the cell's JSON up to its
    mean score, then per line (slug order) its likelihood sum and the clients it is over), around `statement`: the
    database writes the integers of a cell that is shown, keys in order and labels as JSON strings."""
    cells = statement.subquery("cells")
    level, group_id, name, ordinal, *measures = cells.c
    counts: list[Any] = measures[: layout.counts]
    pairs = [(_json_string(before), _json_string(after)) for before, after in layout.pair_labels]
    bands = [_json_string(band) for band in layout.band_labels]
    head = func.concat(
        _sql('{"band_counts":{'),
        _joined(_keyed_sql(band, n) for band, n in zip(bands, counts[layout.band_columns], strict=True)),
        _sql('},"band_transitions":{"from_previous_period":['),
        _joined(_move_sql(pair, n) for pair, n in zip(pairs, counts[layout.previous_columns], strict=True)),
        _sql('],"since_first_survey":['),
        _joined(_move_sql(pair, n) for pair, n in zip(pairs, counts[layout.first_columns], strict=True)),
        _sql(']},"clients":'),
        counts[0],
        _sql(',"mean_score":'),
    )
    lines = []
    for total, set_columns in zip(measures[layout.counts :], layout.slug_clients, strict=True):
        lines += [total, reduce(operator.add, (measures[column] for column in set_columns))]
    return select(level, group_id, name, ordinal, *counts[:4], case((counts[0] >= k, head)), *lines)


def _finished_points(
    rows: Iterable[Any], layout: Layout, period_kind: str, k: int
) -> Iterator[tuple[str, str, str, int, bool, str, int]]:
    """`_points_in_sql`'s rows as `_points` gives them: the mean score and poverty rates rounded and written by
    Python, as `canonical_json` writes them."""
    slugs = [_json_string(slug) + ":" for slug in layout.slugs]
    periods: dict[int, str] = {}
    for level, group_id, name, ordinal, clients, surveys, score_sum, score_n, head, *lines in rows:
        period = periods.get(ordinal) or periods.setdefault(ordinal, _json_string(period_label(ordinal, period_kind)))
        if clients < k:
            yield level, group_id, name, ordinal, True, '{"period":' + period + ',"suppressed":true}', clients
            continue
        mean = repr(round(score_sum / score_n, 2)) if score_n else "null"
        rates = ",".join(
            [
                slug + repr(round(total / n, 4))
                for slug, total, n in zip(slugs, lines[::2], lines[1::2], strict=True)
                if n
            ]
        )
        tail = f',"period":{period},"poverty_rate":{{{rates}}},"suppressed":false,"surveys":{surveys}}}'
        yield level, group_id, name, ordinal, False, head + mean + tail, clients


def _keyed_sql(key: str, clients: Any) -> Any:
    """`"key":clients`, NULL when there are none."""
    return case((clients > 0, _text(f"{key}:") + cast(clients, Text)))


def _move_sql(pair: tuple[str, str], clients: Any) -> Any:
    """One band transition ({"clients", "from", "to"}), NULL when no client made it."""
    before, after = pair
    text = _sql('{"clients":') + cast(clients, Text) + _text(f',"from":{before},"to":{after}}}')
    return case((clients > 0, text))


def _joined(parts: Iterable[Any]) -> Any:
    """The texts that are not NULL, with commas between them."""
    listed = list(parts)
    return func.concat_ws(_sql(","), *listed) if listed else _sql("")


def _sql(constant: str) -> Any:
    """A constant string of this module's, written into the SQL."""
    return literal_column("'" + constant.replace("'", "''") + "'", Text)


def _text(value: str) -> Any:
    """A string made of data (labels, slugs), as a text parameter."""
    return cast(literal(value), Text)


# --- JSON ------------------------------------------------------------------------------------------------------


def cell_to_json(cell: Cell) -> dict[str, Any]:
    """A cell as plain JSON; a suppressed cell says so and carries no numbers."""
    head = {"level": cell.level, "group": {"id": cell.group_id, "name": cell.group_name}}
    if cell.suppressed:
        return head | {"period": cell.period, "suppressed": True}
    numbers = _point_json(
        cell.period,
        cell.clients,
        cell.surveys,
        cell.mean_score,
        cell.poverty_rates,
        cell.band_counts,
        _moves_json(
            [(t.from_band, t.to_band) for t in cell.transitions_since_first],
            [t.clients for t in cell.transitions_since_first],
        ),
        _moves_json(
            [(t.from_band, t.to_band) for t in cell.transitions_from_previous],
            [t.clients for t in cell.transitions_from_previous],
        ),
    )
    return head | numbers


def canonical_json(value: Any) -> str:
    """The feed's JSON text: sorted keys, no spaces, UTF-8 as it is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


_json_string = json.JSONEncoder(ensure_ascii=False).encode  # a string as `canonical_json` writes it


def cells_to_json(cells: Iterable[Cell]) -> list[dict[str, Any]]:
    """`compute`'s result as a JSON-ready list (for `GET /api/v1/aggregates`)."""
    return [cell_to_json(cell) for cell in cells]


def _point_json(
    period: str,
    clients: int | None,
    surveys: int | None,
    mean_score: float | None,
    poverty_rates: dict[str, float],
    band_counts: dict[str, int],
    since_first: list[dict[str, Any]],
    from_previous: list[dict[str, Any]],
) -> dict[str, Any]:
    """The JSON of a cell that is shown, for the feed and the API alike."""
    return {
        "period": period,
        "suppressed": False,
        "clients": clients,
        "surveys": surveys,
        "mean_score": mean_score,
        "poverty_rate": poverty_rates,
        "band_counts": band_counts,
        "band_transitions": {"since_first_survey": since_first, "from_previous_period": from_previous},
    }


def _moves_json(pairs: Sequence[tuple[str, str]], counts: Sequence[int]) -> list[dict[str, Any]]:
    """Band transitions as JSON, the pairs with no clients left out."""
    return [{"from": before, "to": after, "clients": n} for (before, after), n in zip(pairs, counts, strict=True) if n]
