"""The feed's fact table: one row per client, period kind and period, kept up to date for every reader.

Why: which survey counts for a client in a period (the latest; ties -> highest id), how many surveys the client had
in it, the band of their first survey ever and of their latest one in the period before, and its poverty-line
likelihoods, take a window sort over every survey and a join with every poverty-line row to work out: 44 s of the
feed build at 2M surveys (bench/bench_feed.py). The answers change only when a client's surveys, office, officer or
accounts change, so they are stored in `feed_facts` and recomputed when those change:

- for a survey created, edited (new answers or a new date) or deleted, `surveys.service` marks the client stale in
  the same transaction, and whoever reads the aggregates recomputes the marked clients first (`feeds/stale.py`), so
  the USSD hop that submits a survey does not pay for it;
- in the same transaction, the CSV importer for the clients whose office or officer it changed and the clients of
  the accounts it wrote;
- `impact-connect feed rebuild-facts` (and migration 0003) for everyone, e.g. after surveys were written by hand.

`refresh_facts` and `rebuild_facts` run the same statements (`_replace`); only the client filter differs. Moving an
office needs nothing: the roll-up walks the office tree when the feed is built.

Strings are kept once in `feed_keys` and referred to by number: a client's profile (leaf office, officer, funds and
products held; the feed sums per profile before rolling up, and one integer groups far faster than four columns), a
survey's poverty-line set (which slug each `line_N` column holds; line slugs in slug order) and band labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    delete,
    exists,
    extract,
    func,
    literal,
    or_,
    select,
    text,
    true,
    union,
    union_all,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql import Select

from accounts.models import Account, Client
from feeds import sums
from feeds.models import FACT_LINES, PERIOD_KINDS, feed_facts, feed_keys
from surveys.models import SurveyLineResult, SurveyResponse

CHUNK = 500  # clients per refresh statement, well under every database's limit on bound parameters
LINE_COLUMNS = [f"line_{position}" for position in range(1, FACT_LINES + 1)]
FACT_COLUMNS = [column.name for column in feed_facts.columns]


def refresh_facts(session: Session, client_ids: Iterable[int]) -> None:
    """Recompute the facts of these clients, in the caller's transaction (after their surveys, office, officer or
    accounts changed)."""
    ids = sorted(set(client_ids))
    for start in range(0, len(ids), CHUNK):
        _replace(session, ids[start : start + CHUNK])


def rebuild_facts(session: Session, *, with_sums: bool = True) -> int:
    """Recompute every client's facts and mark every profile's sums out of date (`with_sums=False`: the facts only,
    for migration 0003, which runs before the sums exist); returns the number of fact rows. On PostgreSQL it locks
    the fact table until the transaction ends (survey writes wait) and analyzes it afterwards."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL work_mem = '256MB'"))  # the window sort over every survey stays in memory
        session.execute(text("SET LOCAL jit = off"))
    _replace(session, None)
    if postgres:
        session.execute(text("ANALYZE feed_facts"))
    if with_sums:
        sums.mark_all(session)
    return session.execute(select(func.count()).select_from(feed_facts)).scalar_one()


def forget_unused_bands(session: Session) -> None:
    """Drop the band labels no fact refers to any more, after the surveys were given other bands (`ppi reband`, then
    a rebuild). Each label ever seen is a measure column of every aggregate and profile sum, pairs of them too, so
    labels of the past would otherwise use up the sums' columns for good. The next reader recomputes the sums in
    the smaller layout."""
    columns = (feed_facts.c.band_id, feed_facts.c.first_band_id, feed_facts.c.prev_band_id)
    used = union(*(select(column).where(column.is_not(None)) for column in columns)).subquery()
    session.execute(delete(feed_keys).where(feed_keys.c.kind == "band", feed_keys.c.id.not_in(select(used.c[0]))))


def _replace(session: Session, ids: Sequence[int] | None) -> None:
    """Delete the clients' facts (None: everyone's), add the strings their new facts refer to, insert the new facts,
    and mark the profiles of their old and new facts for `feeds/sums.py` (a rebuild recomputes every profile's sums
    afterwards instead).

    The clients' rows are locked first (in id order), so two transactions refreshing one client take turns and the
    second one sees what the first one wrote; without it, both would insert the same fact rows."""
    session.flush()  # the statements below read the tables, not the session's pending objects
    connection = session.connection()
    dialect = connection.dialect.name
    lock, delete, intern, insert = _statements(dialect, filtered=ids is not None)
    parameters = {} if ids is None else {"client_ids": list(ids)}
    if ids is None and dialect == "postgresql":
        connection.execute(text("TRUNCATE feed_facts"))
    else:
        connection.execute(lock, parameters)
        if ids is not None:
            sums.mark_clients_profiles(session, ids)
        connection.execute(delete, parameters)
    connection.execute(intern, parameters)
    connection.execute(insert, parameters)
    if ids is not None:
        sums.mark_clients_profiles(session, ids)


@cache
def _statements(dialect: str, *, filtered: bool) -> tuple[Any, Any, Any, Any]:
    """The lock, delete, intern and insert statements for the clients in the `client_ids` parameter (or for
    everyone), built once: building and compiling them costs more than running them for one client. The intern
    statement is still compiled on every run (~3 ms): SQLAlchemy 2.0 gives the dialects' INSERT ... ON CONFLICT no
    cache key, so it never reaches the compiled cache (bench/README.md, USSD section)."""
    clients = Client.__table__
    return (
        select(clients.c.id).where(_only(clients.c.id, filtered)).order_by(clients.c.id).with_for_update(),
        feed_facts.delete().where(_only(feed_facts.c.client_id, filtered)),
        _intern_missing(dialect, filtered),
        feed_facts.insert().from_select(FACT_COLUMNS, _fact_rows(filtered)),
    )


def _only(column: Any, filtered: bool) -> Any:
    return column.in_(bindparam("client_ids", expanding=True)) if filtered else true()


# --- the facts ---------------------------------------------------------------------------------------------------


def _fact_rows(filtered: bool) -> Select[Any]:
    """The fact rows of the clients, in `FACT_COLUMNS` order, with their strings already in `feed_keys`. Sorted by
    profile: a rebuild writes each profile's rows together, and the build's GROUP BY by profile then finds its
    groups in the CPU cache (2x faster at 1M clients than rows in client order; rows refreshed later land anywhere)."""
    chosen = _latest_per_period(filtered)
    profiles = _profiles(filtered)
    lines = _line_sets(filtered)
    profile, line_set = feed_keys.alias("profile_key"), feed_keys.alias("line_set_key")
    band, first_band, prev_band = (feed_keys.alias(f"{name}_key") for name in ("band", "first_band", "prev_band"))
    return (
        select(
            chosen.c.client_id,
            chosen.c.period_kind,
            chosen.c.ord,
            chosen.c.id,
            profile.c.id,
            line_set.c.id,
            chosen.c.n_surveys,
            chosen.c.headline_score,
            band.c.id,
            first_band.c.id,
            prev_band.c.id,
            *(lines.c[name] for name in LINE_COLUMNS),
        )
        .select_from(chosen)
        .join(profiles, profiles.c.client_id == chosen.c.client_id)
        .join(profile, _is_key(profile, "profile", profiles.c.key))
        .outerjoin(lines, lines.c.survey_id == chosen.c.id)
        .outerjoin(line_set, _is_key(line_set, "lines", lines.c.key))
        .outerjoin(band, _is_key(band, "band", chosen.c.band))
        .outerjoin(first_band, _is_key(first_band, "band", chosen.c.first_band))
        .outerjoin(prev_band, _is_key(prev_band, "band", chosen.c.prev_band))
        .order_by(profile.c.id, chosen.c.ord)
    )


def _is_key(keys: Any, kind: str, value: Any) -> Any:
    return and_(keys.c.kind == kind, keys.c.value == value)


def _latest_per_period(filtered: bool) -> Any:
    """(id, client_id, period_kind, ord, n_surveys, headline_score, band, first_band, prev_band): the latest survey
    of each client and period (ties -> highest id), the number of surveys the client had in it, the band of the
    client's first survey ever when that is another survey, and the band of the latest survey of the immediately
    preceding period. All windows share one sort by (client, period kind, period, date, id)."""
    dated = _dated(filtered)
    client = (dated.c.client_id, dated.c.period_kind)
    in_order = (dated.c.ord, dated.c.date_collected, dated.c.id)
    ranked = select(
        *dated.c,
        func.count().over(partition_by=(*client, dated.c.ord)).label("n_surveys"),
        func.lead(dated.c.ord).over(partition_by=client, order_by=in_order).label("next_ord"),
        func.first_value(dated.c.band).over(partition_by=client, order_by=in_order).label("first_band"),
        func.first_value(dated.c.id).over(partition_by=client, order_by=in_order).label("first_id"),
    ).subquery("ranked")
    # On the latest survey of a period, stepping back n_surveys rows lands on the latest one of an earlier period.
    back = cast(ranked.c.n_surveys, Integer)
    client = (ranked.c.client_id, ranked.c.period_kind)
    in_order = (ranked.c.ord, ranked.c.date_collected, ranked.c.id)
    stepped = select(
        *ranked.c,
        func.lag(ranked.c.band, back).over(partition_by=client, order_by=in_order).label("earlier_band"),
        func.lag(ranked.c.ord, back).over(partition_by=client, order_by=in_order).label("earlier_ord"),
    ).subquery("stepped")
    return (
        select(
            stepped.c.id,
            stepped.c.client_id,
            stepped.c.period_kind,
            stepped.c.ord,
            stepped.c.n_surveys,
            stepped.c.headline_score,
            stepped.c.band,
            case((stepped.c.first_id != stepped.c.id, stepped.c.first_band)).label("first_band"),
            case((stepped.c.earlier_ord == stepped.c.ord - 1, stepped.c.earlier_band)).label("prev_band"),
        )
        .where(or_(stepped.c.next_ord.is_(None), stepped.c.next_ord != stepped.c.ord))
        .cte("chosen")
        .prefix_with("MATERIALIZED")
    )


def _dated(filtered: bool) -> Any:
    """Every survey of the clients once per period kind, with the ordinal of its period in that kind."""
    survey = SurveyResponse.__table__
    kinds = union_all(*(select(literal(kind, String).label("period_kind")) for kind in PERIOD_KINDS)).subquery("kinds")
    ordinal = case(
        *((kinds.c.period_kind == kind, _ordinal_expression(survey.c.date_collected, kind)) for kind in PERIOD_KINDS)
    )
    return (
        select(
            survey.c.id,
            survey.c.client_id,
            survey.c.headline_score,
            survey.c.band,
            survey.c.date_collected,
            kinds.c.period_kind,
            ordinal.label("ord"),
        )
        .select_from(survey.join(kinds, true()))
        .where(_only(survey.c.client_id, filtered))
        .subquery("dated")
    )


def _ordinal_expression(date_column: Any, period_kind: str) -> Any:
    """A date's period ordinal, the numbers `aggregates.period_ordinal` reads from labels."""
    year = cast(extract("year", date_column), Integer)
    month = cast(extract("month", date_column), Integer)
    if period_kind == "month":
        return year * 12 + month - 1
    if period_kind == "quarter":
        return year * 4 + (month - 1) // 3
    return year


def _profiles(filtered: bool) -> Any:
    """(client_id, key) of the clients with surveys: "office|officer|holdings", where holdings lists the funds ("f3")
    and products ("p7") the client holds accounts in. Clients with the same key count under exactly the same groups.
    The list is built in sorted order where the database keeps it; where it does not, one profile gets several keys,
    which costs speed only."""
    clients, account = Client.__table__, Account.__table__
    tokens = union(
        *(
            select(account.c.client_id, (literal(prefix, String) + cast(column, String)).label("token")).where(
                column.is_not(None), _only(account.c.client_id, filtered)
            )
            for prefix, column in (("f", account.c.fund_id), ("p", account.c.product_id))
        )
    ).subquery("tokens")
    in_order = select(tokens).order_by(tokens.c.client_id, tokens.c.token).subquery("ordered_tokens")
    holdings = (
        select(in_order.c.client_id, func.aggregate_strings(in_order.c.token, ",").label("holdings"))
        .group_by(in_order.c.client_id)
        .subquery("holdings")
    )
    key = (
        cast(clients.c.office_id, String)
        + "|"
        + func.coalesce(cast(clients.c.officer_id, String), "")
        + "|"
        + func.coalesce(holdings.c.holdings, "")
    )
    surveyed = exists().where(SurveyResponse.__table__.c.client_id == clients.c.id)
    return (
        select(clients.c.id.label("client_id"), key.label("key"))
        .outerjoin(holdings, holdings.c.client_id == clients.c.id)
        .where(_only(clients.c.id, filtered), surveyed)
        .cte("profiles")
        .prefix_with("MATERIALIZED")
    )


def _line_sets(filtered: bool) -> Any:
    """(survey_id, key, line_1..line_N): each survey's likelihoods in the order of its line slugs, and the slugs
    joined by commas. A survey with more lines than columns gets a key with one slug more than there are columns,
    which the feed build refuses loudly instead of dropping lines."""
    line, survey = SurveyLineResult.__table__, SurveyResponse.__table__
    position = func.row_number().over(partition_by=line.c.survey_id, order_by=line.c.line_slug)
    numbered = select(line.c.survey_id, line.c.line_slug, line.c.likelihood, position.label("position"))
    if filtered:
        numbered = numbered.where(line.c.survey_id.in_(select(survey.c.id).where(_only(survey.c.client_id, True))))
    lines = numbered.subquery("numbered")

    def at(column: Any, position: int) -> Any:
        return func.max(case((lines.c.position == position, column)))

    slugs = [at(lines.c.line_slug, position) for position in range(1, FACT_LINES + 2)]
    key = slugs[0]
    for slug in slugs[1:]:
        key = key + func.coalesce(literal(",", String) + slug, "")
    likelihoods = [at(lines.c.likelihood, position).label(name) for position, name in enumerate(LINE_COLUMNS, 1)]
    query = select(lines.c.survey_id, key.label("key"), *likelihoods).group_by(lines.c.survey_id)
    return query.cte("line_sets").prefix_with("MATERIALIZED")


# --- interned strings --------------------------------------------------------------------------------------------


def _intern_missing(dialect: str, filtered: bool) -> Any:
    """Add the profiles, line sets and bands of the clients' facts that `feed_keys` does not have yet (a concurrent
    transaction adding the same one first is fine: the conflict is skipped)."""
    survey = SurveyResponse.__table__
    profiles, lines = _profiles(filtered), _line_sets(filtered)
    wanted = union(
        select(literal("profile", String).label("kind"), profiles.c.key.label("value")),
        select(literal("lines", String), lines.c.key),
        select(literal("band", String), survey.c.band).where(
            survey.c.band.is_not(None), _only(survey.c.client_id, filtered)
        ),
    ).subquery("wanted")
    known = exists().where(feed_keys.c.kind == wanted.c.kind, feed_keys.c.value == wanted.c.value)
    missing = select(wanted.c.kind, wanted.c.value).where(~known)
    insert = (postgresql if dialect == "postgresql" else sqlite).insert(feed_keys)
    return insert.from_select(["kind", "value"], missing).on_conflict_do_nothing()
