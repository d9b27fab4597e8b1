"""The profile sums the aggregates are read from (`feeds/sums.py`): recomputed when their layout is not the current
one, when a band no one had before arrives, and refused loudly when the layout does not fit; a reader reads again
when sums of another layout appeared while it read; a reader that has sums to recompute waits for the transaction
recomputing them and then sees its work. That they equal a fresh rebuild
after every write path is checked with the facts (tests/integration/test_feed_facts.py)."""

from __future__ import annotations

import threading
from datetime import date

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from accounts.models import Client
from bootstrap import Services
from feeds import stale, sums
from feeds.aggregates import AggregateError, compute
from feeds.facts import refresh_facts
from feeds.models import feed_keys, feed_profile_dirty, feed_profile_sums
from tests.conftest import TEST_DATABASE_URL
from tests.factories import NOW, STANDARD_BANDS, configure_ppi, make_client, make_office
from tests.integration.test_feed_facts import survey, wipe_clients_and_feed_tables


@pytest.fixture(autouse=True)
def _empty(services: Services) -> None:
    wipe_clients_and_feed_tables(services)


def _surveyed_clients(services: Services, count: int = 3) -> list[int]:
    with services.transaction() as session:
        configure_ppi(session, bands=STANDARD_BANDS)
        branch = make_office(session, level="branch")
        ids = [make_client(session, office=branch).id for _ in range(count)]
        for client_id in ids:
            survey(session, client_id, date(2024, 5, 1))
    return ids


def _branch_cells(services: Services) -> list[tuple[int | None, dict[str, int]]]:
    with services.transaction() as session:
        stale.catch_up(session)
        return [(cell.clients, cell.band_counts) for cell in compute(session, level="branch", period_kind="year", k=1)]


def _layouts_stored(services: Services) -> set[int]:
    with services.transaction() as session:
        return set(session.scalars(select(feed_profile_sums.c.layout_id).distinct()))


def test_sums_stored_under_another_layout_are_recomputed_before_they_are_read(services: Services) -> None:
    _surveyed_clients(services)
    expected = _branch_cells(services)
    assert expected[0][0] == 3
    with services.transaction() as session:
        session.execute(feed_keys.insert().values(kind="layout", value='{"an":"older layout"}'))
        older = session.scalar(select(feed_keys.c.id).where(feed_keys.c.value == '{"an":"older layout"}'))
        session.execute(update(feed_profile_sums).values(layout_id=older, clients=999))
    assert _branch_cells(services) == expected
    assert older not in _layouts_stored(services)


def test_sums_of_another_layout_committed_during_a_read_make_the_reader_read_again(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    _surveyed_clients(services)
    expected = _branch_cells(services)
    checks = []
    real_only_in = sums.only_in

    def only_in_after_a_concurrent_layout(session: Session, layout_id: int) -> bool:
        if not checks:  # what a transaction with a newer layout would have committed while the statement ran
            session.execute(feed_keys.insert().values(kind="layout", value='{"a":"newer layout"}'))
            newer = session.scalar(select(feed_keys.c.id).where(feed_keys.c.value == '{"a":"newer layout"}'))
            session.execute(update(feed_profile_sums).values(layout_id=newer, clients=999))
        checks.append(layout_id)
        return real_only_in(session, layout_id)

    monkeypatch.setattr(sums, "only_in", only_in_after_a_concurrent_layout)
    assert _branch_cells(services) == expected
    assert len(checks) == 2  # read, found the other layout's rows, recomputed them and read again


def test_a_band_no_one_had_before_changes_the_layout_and_every_profile_is_recomputed_in_it(
    services: Services,
) -> None:
    [first, *_] = _surveyed_clients(services)
    _branch_cells(services)
    [before] = _layouts_stored(services)
    with services.transaction() as session:
        configure_ppi(session, bands="0-49:Below,50-100:Above")
        survey(session, first, date(2024, 5, 1))
    [(clients, bands)] = _branch_cells(services)
    assert clients == 3
    assert sum(bands.values()) == 3 and ("Below" in bands or "Above" in bands)
    [after] = _layouts_stored(services)
    assert after != before


def test_a_layout_too_wide_for_the_profile_sums_is_refused_with_a_clear_error(services: Services) -> None:
    _surveyed_clients(services)
    with services.transaction() as session:
        session.execute(feed_keys.insert(), [{"kind": "band", "value": f"Band {n}"} for n in range(12)])
    with services.transaction() as session, pytest.raises(AggregateError, match="profile sums hold 240"):
        compute(session, level="branch", period_kind="year", k=1)


@pytest.mark.skipif(TEST_DATABASE_URL is None, reason="advisory and row locks: PostgreSQL")
def test_a_reader_with_sums_to_recompute_waits_for_the_transaction_recomputing_and_then_sees_its_work(
    services: Services,
) -> None:
    [first, second, _third] = _surveyed_clients(services)
    _branch_cells(services)
    with services.transaction() as session:
        stale.mark(session, [second], now=NOW)  # left for the reader: its profile's sums to recompute
    reader_started, reader_done = threading.Event(), threading.Event()
    seen: list[list[int | None]] = []

    def reader() -> None:
        reader_started.set()
        seen.append(sorted(clients for clients, _bands in _branch_cells(services)))
        reader_done.set()

    thread = threading.Thread(target=reader)
    with services.transaction() as session:
        moved_to = make_office(session, level="branch").id
        session.execute(update(Client).where(Client.id == first).values(office_id=moved_to))
        refresh_facts(session, [first])
        sums.current(session)  # holds the advisory lock until this transaction commits
        thread.start()
        reader_started.wait(10)
        assert not reader_done.wait(1.0), "the reader recomputed sums while another transaction was"
    thread.join(20)
    assert seen == [[1, 2]]  # the move, committed while the reader waited
    with services.transaction() as session:
        assert session.scalar(select(func.count()).select_from(feed_profile_dirty)) == 0
