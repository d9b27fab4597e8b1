"""Benchmark: build the full impact feed (every level, 8 quarters) over 1M clients and 2M surveys on PostgreSQL.

Generates the data with `INSERT ... SELECT generate_series` into a dedicated database (dropped and recreated) and
fills the feed's fact table with `feeds.facts.rebuild_facts` (what `impact-connect feed rebuild-facts` runs; timed
and reported as the back-fill, not part of the build), then reports the feed build time next to the floor: one plain
GROUP BY scan over the survey table. The build is `feeds.document.build_body`: the document as the text that gets
signed and sent. Every figure comes with the load average when it was taken (2 shared cores).

    .venv/bin/python bench/bench_feed.py                      # full size (1M clients, 2M surveys, 4 lines)
    .venv/bin/python bench/bench_feed.py --clients 100000 --surveys 200000
    .venv/bin/python bench/bench_feed.py --reuse              # keep the generated data, time again
    .venv/bin/python bench/bench_feed.py --reuse --backfill   # ... after running the back-fill again
    .venv/bin/python bench/bench_feed.py --reuse --churn 100000   # ... after refreshing 100,000 random clients' facts

Environment: BENCH_PG (default postgresql+psycopg://postgres@127.0.0.1:5432), database ic_bench_feed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text  # noqa: E402

import migrate  # noqa: E402
from db import make_engine, make_session_factory  # noqa: E402
from feeds import document, sums  # noqa: E402
from feeds.facts import rebuild_facts, refresh_facts  # noqa: E402
from settings import Settings  # noqa: E402

SERVER = os.environ.get("BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
DATABASE = "ic_bench_feed"
NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)  # 8 quarters: 2024-Q3 .. 2026-Q2
FIRST_DAY = "2024-07-01"
DAYS = 730
LINES = ["food", "national", "usd-2-15", "usd-3-65", "bottom-20", "bottom-40", "bottom-60", "bottom-80"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--surveys", type=int, default=2_000_000)
    parser.add_argument("--lines", type=int, default=4, help="poverty lines per survey (1-8)")
    parser.add_argument("--reuse", action="store_true", help="time the existing data, do not regenerate")
    parser.add_argument("--backfill", action="store_true", help="with --reuse: run and time the back-fill again")
    parser.add_argument(
        "--churn",
        type=int,
        default=0,
        help="refresh the facts of this many random clients first, as survey writes do over time: their rows move "
        "to the end of the table, out of the back-fill's order by profile",
    )
    args = parser.parse_args()
    url = f"{SERVER}/{DATABASE}"
    settings = Settings(app_env="test", database_url=url, suppression_k=5)
    if not args.reuse:
        started = time.perf_counter()
        _recreate_database()
        migrate.upgrade(settings)
        _generate(url, args.clients, args.surveys, args.lines)
        print(f"generated {args.clients:,} clients, {args.surveys:,} surveys in {time.perf_counter() - started:.1f} s")
    else:
        migrate.upgrade(settings)  # an older database gets the fact table (its migration back-fills it)
    if not args.reuse or args.backfill:
        _backfill(url)
    if args.churn:
        _churn(url, args.churn)
    else:
        _catch_up_sums(url)
    _time(settings)


def _recreate_database() -> None:
    admin = create_engine(f"{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {DATABASE}"))
        connection.execute(text(f"CREATE DATABASE {DATABASE}"))
    admin.dispose()


def _generate(url: str, clients: int, surveys: int, lines: int) -> None:
    engine = create_engine(url)
    statements = [
        # Office tree: 1 country, 10 regions, 100 branches, 1,000 centers, 5,000 groups.
        "INSERT INTO offices (id, external_id, name, level, parent_id, path) "
        "VALUES (1, 'KE', 'Kenya', 'country', NULL, '/1/')",
        _offices("region", 2, 10, "1 + 0"),
        _offices("branch", 12, 100, "2 + (g - 12) / 10"),
        _offices("center", 112, 1000, "12 + (g - 112) / 10"),
        _offices("group", 1112, 5000, "112 + (g - 1112) / 5"),
        "INSERT INTO staff (id, external_id, name, office_id, role) "
        "SELECT g, 'S' || g, 'Officer ' || g, 12 + g % 100, 'loan_officer' FROM generate_series(1, 2000) g",
        "INSERT INTO funds (id, external_id, name) SELECT g, 'F' || g, 'Fund ' || g FROM generate_series(1, 20) g",
        "INSERT INTO loan_products (id, external_id, name) SELECT g, 'P' || g, 'Product ' || g "
        "FROM generate_series(1, 10) g",
        f"INSERT INTO clients (id, external_id, name, office_id, officer_id, pin_failed_attempts, message_opt_out) "
        f"SELECT g, 'C' || g, 'Client ' || g, 1112 + (g::bigint * 7919) % 5000, 1 + g % 2000, 0, false "
        f"FROM generate_series(1, {clients}) g",
        # One loan per client, a second one for every fifth client.
        f"INSERT INTO accounts (external_id, client_id, kind, fund_id, product_id, currency, status, balance, arrears) "
        f"SELECT 'A' || g, 1 + (g - 1) % {clients}, 'loan', 1 + (g * 31) % 20, 1 + (g * 17) % 10, "
        f"'KES', 'active', 0, 0 "
        f"FROM generate_series(1, {clients + clients // 5}) g",
        f"INSERT INTO survey_responses (id, client_id, scorecard_id, date_collected, mode, channel, headline_line, "
        f"headline_score, band, created_at, updated_at) "
        f"SELECT g, 1 + (g::bigint * 104729) % {clients}, 'KEN-2024', "
        f"DATE '{FIRST_DAY}' + (random() * {DAYS - 1})::int, "
        f"'self', 'at-ussd', 'national', s, CASE WHEN s < 25 THEN 'Very poor' WHEN s < 50 THEN 'Poor' "
        f"ELSE 'Better off' END, now(), now() "
        f"FROM (SELECT g, (random() * 100)::int AS s FROM generate_series(1, {surveys}) g) t",
        f"SELECT setval(pg_get_serial_sequence('survey_responses', 'id'), {surveys})",
        "INSERT INTO survey_line_results (survey_id, line_slug, score, likelihood) "
        "SELECT s.id, l.slug, s.headline_score, greatest(0, least(1, 1 - s.headline_score / 100.0 * l.factor)) "
        f"FROM survey_responses s CROSS JOIN (VALUES {_line_values(lines)}) AS l(slug, factor)",
        "ANALYZE",
    ]
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(text(statement))
    engine.dispose()


def _offices(level: str, first: int, count: int, parent: str) -> str:
    return (
        f"INSERT INTO offices (id, external_id, name, level, parent_id, path) "
        f"SELECT g, '{level[0].upper()}' || g, '{level} ' || g, '{level}', p.id, p.path || g || '/' "
        f"FROM generate_series({first}, {first + count - 1}) g JOIN offices p ON p.id = {parent}"
    )


def _line_values(count: int) -> str:
    return ", ".join(f"('{slug}', {0.6 + 0.1 * index})" for index, slug in enumerate(LINES[: max(1, min(count, 8))]))


def _backfill(url: str) -> None:
    engine = make_engine(url)
    load = _load()
    started = time.perf_counter()
    with make_session_factory(engine).begin() as session:
        facts = rebuild_facts(session)
    print(f"back-fill (feed rebuild-facts): {facts:,} facts in {time.perf_counter() - started:.1f} s  [{load}]")
    engine.dispose()


def _churn(url: str, clients: int) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with engine.connect() as connection:
        highest = connection.execute(text("SELECT max(id) FROM clients")).scalar_one()
    chosen = random.Random(7).sample(range(1, highest + 1), clients)
    started = time.perf_counter()
    for start in range(0, clients, 1000):
        with factory.begin() as session:
            refresh_facts(session, chosen[start : start + 1000])
    with engine.begin() as connection:
        connection.execute(text("ANALYZE feed_facts"))
    print(f"refreshed the facts of {clients:,} random clients in {time.perf_counter() - started:.1f} s  [{_load()}]")
    engine.dispose()


def _catch_up_sums(url: str) -> None:
    """What the facts catch-up job does half a minute after changes: the marked profiles' sums recomputed (all of
    them after a back-fill or the migration). With --churn the timed build does it, for the churned clients."""
    engine = make_engine(url)
    started = time.perf_counter()
    with make_session_factory(engine).begin() as session:
        marked = session.execute(text("SELECT count(*) FROM feed_profile_dirty")).scalar_one()
        sums.current(session)
    if marked:
        print(f"profile sums of {marked:,} marked profiles in {time.perf_counter() - started:.1f} s  [{_load()}]")
    engine.dispose()


def _load() -> str:
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())


def _time(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    factory = make_session_factory(engine)
    load = _load()
    with engine.connect() as connection:
        surveys = connection.execute(text("SELECT count(*) FROM survey_responses")).scalar_one()
        clients = connection.execute(text("SELECT count(*) FROM clients")).scalar_one()
        started = time.perf_counter()
        connection.execute(
            text(
                "SELECT date_trunc('quarter', date_collected), band, count(*), avg(headline_score) "
                "FROM survey_responses GROUP BY 1, 2"
            )
        ).all()
        floor = time.perf_counter() - started
    with _timed(document, "feed_groups") as groups:
        started = time.perf_counter()
        with factory.begin() as session:
            body = document.build_body(session, settings=settings, now=NOW)
        build = time.perf_counter() - started
    feed = json.loads(body)
    print(f"data: {clients:,} clients, {surveys:,} surveys  [{load}]")
    print(f"floor (one GROUP BY scan over survey_responses): {floor:.2f} s")
    print(f"feed build (all levels, 8 quarters, to the signed bytes): {build:.2f} s  = {build / floor:.1f}x the floor")
    print(f"  the statement, its rows and the groups' text {groups[0]:.2f} s, the rest {build - groups[0]:.2f} s")
    print(
        f"feed: {len(feed['levels'])} levels, {sum(len(level['groups']) for level in feed['levels']):,} groups, "
        f"{len(body.encode()) / 1e6:.1f} MB, {feed['suppression']['cells_withheld']:,} cells withheld"
    )
    engine.dispose()


@contextmanager
def _timed(module: Any, name: str) -> Iterator[list[float]]:
    """Time every call of module.name while the block runs (the seconds accumulate in the yielded list)."""
    original = getattr(module, name)
    spent = [0.0]

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    setattr(module, name, timed)
    try:
        yield spent
    finally:
        setattr(module, name, original)


if __name__ == "__main__":
    main()
