"""Balances and statements read the same from the built-in ledger and from Fineract (a fake server on loopback
serving recorded-shape JSON with the same figures), and Fineract's failures become `CoreBankingUnavailable`, with
the last-known balances served (marked stale) when there are some."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import redis

from accounts.corebanking import (
    AccountBalance,
    CachedCoreBanking,
    CircuitBreaker,
    CoreBanking,
    CoreBankingUnavailable,
    GuardedCoreBanking,
    LedgerCoreBanking,
    StatementLine,
    build_core_banking,
)
from accounts.fineract import ClientNotInCoreBanking, FineractCoreBanking, RedisClientIds
from accounts.models import Account, Client, ClientPhone, LoanProduct, Office, Transaction
from bootstrap import Services

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fineract"
API_ROOT = "/fineract-provider/api/v1"
USERNAME, PASSWORD, TENANT = "gateway", "s3cret", "default"
FETCHED_AT = datetime(2025, 4, 10, 8, 30, tzinfo=UTC)
SHARED_PHONE = "+254711000111"


# --- the fake Fineract ------------------------------------------------------------------------------------------


class FakeFineract(ThreadingHTTPServer):
    daemon_threads = True
    mode = "ok"  # ok | 401 | 404 | 500 | slow | badjson
    requests: list[str]


class FineractHandler(BaseHTTPRequestHandler):
    server: FakeFineract

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        self.server.requests.append(self.path)
        mode = self.server.mode
        if mode == "slow":
            time.sleep(1.0)
        if not self._authorised() or mode == "401":
            return self._send(401, (FIXTURES / "error_401.json").read_bytes())
        if mode == "500":
            return self._send(500, b'{"httpStatusCode":"500","defaultUserMessage":"Internal error"}')
        if mode == "badjson":
            return self._send(200, b"<html>Gateway maintenance</html>")
        fixture = FIXTURES / _fixture_name(url.path.removeprefix(API_ROOT), parse_qs(url.query))
        if mode == "ok" and fixture.name.startswith("search_") and not fixture.exists():
            return self._send(200, b"[]")  # Fineract's search finds nobody: an empty list
        if mode == "404" or not fixture.exists():
            return self._send(404, (FIXTURES / "error_404.json").read_bytes())
        self._send(200, fixture.read_bytes())

    def _authorised(self) -> bool:
        expected = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        return (
            self.headers.get("Authorization") == expected and self.headers.get("Fineract-Platform-TenantId") == TENANT
        )

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the adapter gave up waiting, as it should

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


def _fixture_name(path: str, query: dict[str, list[str]]) -> str:
    if path == "/search":
        if query.get("resource") != ["clients"] or query.get("exactMatch") != ["true"]:
            return "missing.json"
        return f"search_{query['query'][0]}.json"
    name = path.strip("/").replace("/", "_")
    if "associations" in query:
        name += "_" + query["associations"][0]
    return name + ".json"


@pytest.fixture
def fineract_server() -> Iterator[FakeFineract]:
    server = FakeFineract(("127.0.0.1", 0), FineractHandler)
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _fineract(
    server: FakeFineract, *, timeout: float = 2.0, password: str = PASSWORD, client_ids: Any = None
) -> FineractCoreBanking:
    host, port = server.server_address[:2]
    return FineractCoreBanking(
        base_url=f"http://{host}:{port}{API_ROOT}/",
        tenant=TENANT,
        username=USERNAME,
        password=password,
        timeout=timeout,
        clock=lambda: FETCHED_AT,
        client_ids=client_ids,
    )


# --- the same people and money in the ledger ---------------------------------------------------------------------


@pytest.fixture
def people(services: Services) -> dict[str, Client]:
    """Amina (a loan in arrears, a closed loan, savings) and Baraka (no accounts) share one phone."""
    with services.transaction() as session:
        office = Office(external_id="HO", name="Head Office", level="country", path="/")
        session.add(office)
        session.flush()
        amina = _client(session, office, "C-0042", "Amina W.")
        baraka = _client(session, office, "C-0043", "Baraka O.")
        group_loan = LoanProduct(external_id="GL12", name="Group Loan 12w")
        savings = LoanProduct(external_id="VS", name="Voluntary Savings")
        session.add_all([group_loan, savings])
        session.flush()
        loan = _account(session, amina, "000000007", "loan", group_loan, "8450.00", arrears="500.00")
        loan.next_due_date, loan.next_due_amount = date(2025, 4, 14), Decimal("1800.00")
        closed = _account(session, amina, "000000005", "loan", group_loan, "0", status="closed")
        saving = _account(session, amina, "000000009", "savings", savings, "1828.03")
        _transactions(session, loan, [("2025-03-03", "disbursement", "20000"), ("2025-03-17", "repayment", "1800")])
        _transactions(session, loan, [("2025-03-31", "repayment", "1800"), ("2025-04-07", "repayment", "1800")])
        _transactions(session, saving, [("2025-03-10", "deposit", "1528.03"), ("2025-03-20", "withdrawal", "200")])
        _transactions(session, saving, [("2025-04-02", "deposit", "500")])
        _transactions(session, closed, [("2025-04-08", "repayment", "11000")])
    return {"amina": amina, "baraka": baraka}


def _client(session: Any, office: Office, external_id: str, name: str) -> Client:
    client = Client(external_id=external_id, name=name, office_id=office.id)
    client.phones.append(ClientPhone(phone=SHARED_PHONE))
    session.add(client)
    session.flush()
    return client


def _account(
    session: Any, client: Client, number: str, kind: str, product: LoanProduct, balance: str, **extra: Any
) -> Account:
    arrears = Decimal(extra.pop("arrears", "0"))
    account = Account(
        external_id=number,
        client_id=client.id,
        kind=kind,
        product_id=product.id,
        currency="KES",
        balance=Decimal(balance),
        arrears=arrears,
        **extra,
    )
    session.add(account)
    session.flush()
    return account


def _transactions(session: Any, account: Account, rows: list[tuple[str, str, str]]) -> None:
    for when, kind, amount in rows:
        session.add(
            Transaction(
                external_id=f"{account.external_id}-{when}-{kind}",
                account_id=account.id,
                occurred_on=date.fromisoformat(when),
                kind=kind,
                amount=Decimal(amount),
            )
        )


@pytest.fixture(params=["ledger", "fineract"])
def core(request: pytest.FixtureRequest, reader: Any, people: dict[str, Client]) -> CoreBanking:
    if request.param == "ledger":
        return LedgerCoreBanking(reader, clock=lambda: FETCHED_AT)
    return _fineract(request.getfixturevalue("fineract_server"))


@pytest.fixture
def reader(services: Services) -> Iterator[Any]:
    """A session to read clients with (their phones load lazily, as in the conversation shell)."""
    with services.session_factory() as session:
        yield session


@pytest.fixture
def amina(reader: Any, people: dict[str, Client]) -> Client:
    return reader.get_one(Client, people["amina"].id)  # type: ignore[no-any-return]


@pytest.fixture
def baraka(reader: Any, people: dict[str, Client]) -> Client:
    return reader.get_one(Client, people["baraka"].id)  # type: ignore[no-any-return]


# --- the same behaviour from both systems -------------------------------------------------------------------------

AMINA_BALANCES = [
    AccountBalance(
        kind="loan",
        masked_number="••0007",
        product_name="Group Loan 12w",
        currency="KES",
        balance=Decimal("8450.00"),
        next_due_date=date(2025, 4, 14),
        next_due_amount=Decimal("1800.00"),
        arrears=Decimal("500.00"),
        as_of=FETCHED_AT,
    ),
    AccountBalance(
        kind="savings",
        masked_number="••0009",
        product_name="Voluntary Savings",
        currency="KES",
        balance=Decimal("1828.03"),
        next_due_date=None,
        next_due_amount=None,
        arrears=Decimal("0"),
        as_of=FETCHED_AT,
    ),
]


def test_balances_list_open_loans_and_savings_with_due_dates_and_arrears(core: CoreBanking, amina: Client) -> None:
    assert core.balances(amina) == AMINA_BALANCES


def test_client_sharing_the_phone_without_accounts_gets_no_balances(core: CoreBanking, baraka: Client) -> None:
    assert core.balances(baraka) == []


def test_statement_is_the_last_five_transactions_newest_first(core: CoreBanking, amina: Client) -> None:
    lines = core.statement(amina)

    assert lines == [
        StatementLine(date(2025, 4, 7), "repayment", Decimal("1800"), "KES", "••0007"),
        StatementLine(date(2025, 4, 2), "deposit", Decimal("500"), "KES", "••0009"),
        StatementLine(date(2025, 3, 31), "repayment", Decimal("1800"), "KES", "••0007"),
        StatementLine(date(2025, 3, 20), "withdrawal", Decimal("200"), "KES", "••0009"),
        StatementLine(date(2025, 3, 17), "repayment", Decimal("1800"), "KES", "••0007"),
    ]


def test_statement_honours_a_smaller_limit(core: CoreBanking, amina: Client) -> None:
    lines = core.statement(amina, limit=2)

    assert [(line.date, line.kind) for line in lines] == [
        (date(2025, 4, 7), "repayment"),
        (date(2025, 4, 2), "deposit"),
    ]


# --- Fineract failures --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["401", "404", "500", "badjson"])
def test_fineract_errors_become_core_banking_unavailable(
    fineract_server: FakeFineract, amina: Client, mode: str
) -> None:
    fineract_server.mode = mode

    with pytest.raises(CoreBankingUnavailable):
        _fineract(fineract_server).balances(amina)


def test_wrong_fineract_password_is_unavailable_not_a_crash(fineract_server: FakeFineract, amina: Client) -> None:
    with pytest.raises(CoreBankingUnavailable, match="401"):
        _fineract(fineract_server, password="wrong").statement(amina)


def test_slow_fineract_gives_up_within_the_budget(fineract_server: FakeFineract, amina: Client) -> None:
    fineract_server.mode = "slow"

    with pytest.raises(CoreBankingUnavailable, match="in time"):
        _fineract(fineract_server, timeout=0.2).balances(amina)


def test_phone_unknown_to_fineract_is_unavailable(fineract_server: FakeFineract, amina: Client) -> None:
    amina.phones[0].phone = "+254799999999"

    with pytest.raises(CoreBankingUnavailable):
        _fineract(fineract_server).balances(amina)


# --- the balance cache --------------------------------------------------------------------------------------------


def test_cached_balances_spare_a_second_call(fineract_server: FakeFineract, services: Services, amina: Client) -> None:
    cached = CachedCoreBanking(_fineract(fineract_server), services.redis, ttl=60)
    cached.balances(amina)
    calls = len(fineract_server.requests)

    assert cached.balances(amina) == AMINA_BALANCES
    assert len(fineract_server.requests) == calls


def test_last_known_balances_are_served_marked_stale_when_fineract_is_down(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    cached = CachedCoreBanking(_fineract(fineract_server), services.redis, ttl=60)
    cached.balances(amina)
    cached.forget(amina)  # the short cache has expired
    fineract_server.mode = "500"

    served = cached.balances(amina)

    assert served == [replace(balance, stale=True) for balance in AMINA_BALANCES]
    assert {balance.as_of for balance in served} == {FETCHED_AT}


def test_unavailable_without_any_cached_copy_is_reported(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    fineract_server.mode = "500"
    cached = CachedCoreBanking(_fineract(fineract_server), services.redis, ttl=60)

    with pytest.raises(CoreBankingUnavailable):
        cached.balances(amina)


def test_build_core_banking_follows_settings(services: Services, fineract_server: FakeFineract) -> None:
    host, port = fineract_server.server_address[:2]
    fineract_settings = replace(
        services.settings, core_banking="fineract", fineract_url=f"http://{host}:{port}{API_ROOT}"
    )
    with services.session_factory() as session:
        assert isinstance(build_core_banking(services, session), LedgerCoreBanking)
        built = build_core_banking(replace(services, settings=fineract_settings), session)

    assert isinstance(built, CachedCoreBanking)
    assert isinstance(built.inner, GuardedCoreBanking)
    assert isinstance(built.inner.inner, FineractCoreBanking)
    assert built.ttl == fineract_settings.balance_cache_seconds
    breaker = built.inner.breaker
    assert (breaker.failures, breaker.pause, breaker.probe) == (5, 30, 4)  # the probe outlasts a 3 s call


def _searches(server: FakeFineract) -> int:
    return sum(1 for path in server.requests if path.startswith(API_ROOT + "/search"))


def test_the_next_hop_finds_the_fineract_client_without_searching_again(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    assert _fineract(fineract_server, client_ids=RedisClientIds(services.redis)).balances(amina) == AMINA_BALANCES
    assert _searches(fineract_server) == 1

    next_hop = _fineract(fineract_server, client_ids=RedisClientIds(services.redis))  # an adapter lives for a hop

    assert next_hop.statement(amina)[0].kind == "repayment"
    assert _searches(fineract_server) == 1
    [key] = services.redis.keys("corebanking:fineract-id:*")
    assert 0 < services.redis.ttl(key) <= 24 * 3600


def test_a_corrected_phone_finds_the_fineract_client_anew(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    ids = RedisClientIds(services.redis)
    _fineract(fineract_server, client_ids=ids).balances(amina)
    amina.phones[0].phone = "+254799999999"  # staff corrected it: nobody in Fineract has this number

    with pytest.raises(ClientNotInCoreBanking):
        _fineract(fineract_server, client_ids=ids).balances(amina)
    assert _searches(fineract_server) > 1


def test_a_remembered_fineract_id_that_fails_is_searched_again(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    ids = RedisClientIds(services.redis)
    _fineract(fineract_server, client_ids=ids).balances(amina)
    [key] = services.redis.keys("corebanking:fineract-id:*")
    services.redis.set(key, 999)  # a Fineract client with no accounts record here

    with pytest.raises(CoreBankingUnavailable, match="404"):
        _fineract(fineract_server, client_ids=ids).balances(amina)

    assert _fineract(fineract_server, client_ids=ids).balances(amina) == AMINA_BALANCES
    assert _searches(fineract_server) == 2


# --- the circuit breaker ------------------------------------------------------------------------------------------

PAUSED_KEY = "corebanking:breaker:fineract:paused"
PROBE_KEY = "corebanking:breaker:fineract:probe"


def _guarded(server: FakeFineract, services: Services, *, failures: int = 2) -> CachedCoreBanking:
    breaker = CircuitBreaker(services.redis, name="fineract", failures=failures, pause=30, probe=5)
    return CachedCoreBanking(GuardedCoreBanking(_fineract(server), breaker), services.redis, ttl=60)


def test_after_repeated_failures_fineract_is_not_called_and_the_last_known_balance_comes_at_once(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    core = _guarded(fineract_server, services)
    core.balances(amina)  # a last-known copy
    fineract_server.mode = "500"
    for _ in range(2):
        core.forget(amina)
        core.balances(amina)
    calls = len(fineract_server.requests)
    core.forget(amina)

    served = core.balances(amina)

    assert len(fineract_server.requests) == calls  # paused: Fineract was not asked
    assert served == [replace(balance, stale=True) for balance in AMINA_BALANCES]
    assert 0 < services.redis.ttl(PAUSED_KEY) <= 30
    with pytest.raises(CoreBankingUnavailable, match="paused"):
        core.statement(amina)
    assert len(fineract_server.requests) == calls


def test_failures_below_the_threshold_or_with_a_success_between_them_do_not_pause(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    core = _guarded(fineract_server, services)
    fineract_server.mode = "500"
    with pytest.raises(CoreBankingUnavailable):
        core.statement(amina)
    fineract_server.mode = "ok"
    core.statement(amina)  # clears the count
    fineract_server.mode = "500"
    with pytest.raises(CoreBankingUnavailable):
        core.statement(amina)
    calls = len(fineract_server.requests)

    with pytest.raises(CoreBankingUnavailable, match="HTTP 500"):
        core.statement(amina)  # the second failure in a row: still asked, then paused

    assert len(fineract_server.requests) > calls
    assert services.redis.exists(PAUSED_KEY)


def _after_a_pause(server: FakeFineract, services: Services, client: Client) -> CachedCoreBanking:
    """A breaker that paused Fineract after two failures, and whose pause is over (its key expired)."""
    core = _guarded(server, services)
    server.mode = "500"
    for _ in range(2):
        with pytest.raises(CoreBankingUnavailable):
            core.statement(client)
    services.redis.delete(PAUSED_KEY)
    return core


def test_after_the_pause_fineract_is_asked_again_and_one_failure_pauses_it_again(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    core = _after_a_pause(fineract_server, services, amina)

    with pytest.raises(CoreBankingUnavailable, match="HTTP 500"):
        core.statement(amina)
    assert services.redis.exists(PAUSED_KEY)  # one failure was enough

    services.redis.delete(PAUSED_KEY)
    fineract_server.mode = "ok"
    assert core.statement(amina)[0].kind == "repayment"
    fineract_server.mode = "500"
    with pytest.raises(CoreBankingUnavailable, match="HTTP 500"):
        core.statement(amina)
    assert not services.redis.exists(PAUSED_KEY)  # the success had cleared the count


def test_after_the_pause_one_call_tries_fineract_while_the_others_still_fail_at_once(
    fineract_server: FakeFineract, services: Services, amina: Client
) -> None:
    core = _after_a_pause(fineract_server, services, amina)
    services.redis.set(PROBE_KEY, 1, ex=5)  # another process is making the trial call
    fineract_server.mode = "ok"
    calls = len(fineract_server.requests)

    with pytest.raises(CoreBankingUnavailable, match="paused"):
        core.statement(amina)
    assert len(fineract_server.requests) == calls

    services.redis.delete(PROBE_KEY)  # its trial ended without word (it gives up after `probe` seconds)
    assert core.statement(amina)[0].kind == "repayment"  # this call was the trial: it closed the breaker
    assert not services.redis.exists(PROBE_KEY)
    assert core.statement(amina)[0].kind == "repayment"


def test_clients_unknown_to_fineract_do_not_pause_it(
    fineract_server: FakeFineract, services: Services, amina: Client, baraka: Client
) -> None:
    core = _guarded(fineract_server, services)
    amina.phones[0].phone = "+254799999999"
    for _ in range(3):
        with pytest.raises(ClientNotInCoreBanking):
            core.statement(amina)

    assert not services.redis.exists(PAUSED_KEY)
    assert core.balances(baraka) == []


def test_without_redis_the_breaker_lets_every_call_through(fineract_server: FakeFineract, amina: Client) -> None:
    broken = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)  # nothing listens there
    breaker = CircuitBreaker(broken, name="fineract", failures=1, pause=30, probe=5)
    core = GuardedCoreBanking(_fineract(fineract_server), breaker)
    fineract_server.mode = "500"
    with pytest.raises(CoreBankingUnavailable, match="HTTP 500"):
        core.balances(amina)
    fineract_server.mode = "ok"

    assert core.balances(amina) == AMINA_BALANCES


def test_cache_survives_a_corrupt_entry(services: Services, fineract_server: FakeFineract, amina: Client) -> None:
    services.redis.set(f"corebanking:balances:{amina.id}", json.dumps([{"kind": "loan"}]))
    cached = CachedCoreBanking(_fineract(fineract_server), services.redis, ttl=60)

    assert cached.balances(amina) == AMINA_BALANCES


def test_a_phone_search_that_finds_only_the_other_client_on_a_shared_phone_shows_no_balances(services) -> None:
    import httpx

    from tests.factories import make_client

    with services.transaction() as session:
        amina = make_client(session, external_id="C0001", name="Amina W", phones=[SHARED_PHONE])
        baraka = make_client(session, external_id="C0200", name="Baraka O", phones=[SHARED_PHONE])

    def fineract(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/search":  # Fineract has the shared number for Amina only
            hit = {"entityId": 42, "entityExternalId": "C0001", "entityType": "CLIENT", "entityAccountNo": "000000042"}
            return httpx.Response(200, json=[hit])
        if path == "/clients/42/accounts":
            savings = {"id": 9, "accountNo": "000000009", "productName": "Savings", "status": {"active": True}}
            return httpx.Response(200, json={"savingsAccounts": [{**savings, "accountBalance": 1828.03}]})
        return httpx.Response(404, json={})

    core = FineractCoreBanking(
        "http://fineract.test/api/v1",
        "default",
        "u",
        "p",
        http_client=httpx.Client(transport=httpx.MockTransport(fineract)),
    )
    assert [balance.balance for balance in core.balances(amina)] == [Decimal("1828.03")]
    with pytest.raises(ClientNotInCoreBanking):  # the screen says the service is unavailable: never Amina's savings
        core.balances(baraka)


def test_on_a_shared_phone_a_search_hit_without_an_external_id_is_nobodys(services) -> None:
    """Fineract leaves out an external id it does not have: the one hit of a family phone may be either client."""
    import httpx

    from tests.factories import make_client

    with services.transaction() as session:
        amina = make_client(session, external_id="C0001", name="Amina W", phones=[SHARED_PHONE])
        baraka = make_client(session, external_id="C0200", name="Baraka O", phones=[SHARED_PHONE])
        alone = make_client(session, external_id="C0300", name="Chebet K", phones=["+254722000300"])

    def fineract(request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1")
        if path == "/search":
            return httpx.Response(200, json=[{"entityId": 42, "entityType": "CLIENT", "entityAccountNo": "000000042"}])
        if path == "/clients/42/accounts":
            savings = {"id": 9, "accountNo": "000000009", "productName": "Savings", "status": {"active": True}}
            return httpx.Response(200, json={"savingsAccounts": [{**savings, "accountBalance": 1828.03}]})
        return httpx.Response(404, json={})

    def core() -> FineractCoreBanking:
        transport = httpx.MockTransport(fineract)
        return FineractCoreBanking(
            "http://fineract.test/api/v1", "default", "u", "p", http_client=httpx.Client(transport=transport)
        )

    with services.transaction() as session:
        for client in (session.get(type(amina), amina.id), session.get(type(baraka), baraka.id)):
            with pytest.raises(ClientNotInCoreBanking):
                core().balances(client)
        assert [b.balance for b in core().balances(session.get(type(alone), alone.id))] == [Decimal("1828.03")]


def test_the_ledger_lists_dormant_savings_as_fineract_does(services: Services, people: dict[str, Client]) -> None:
    """Dormant is a sub-status of an active savings account in Fineract: the money is still there."""
    from sqlalchemy import update

    with services.transaction() as session:
        session.execute(update(Account).where(Account.external_id == "000000009").values(status="dormant"))
    with services.session_factory() as session:
        amina = session.get_one(Client, people["amina"].id)
        ledger = LedgerCoreBanking(session, clock=lambda: FETCHED_AT)
        assert [(b.kind, b.balance) for b in ledger.balances(amina)] == [
            ("loan", Decimal("8450.00")),
            ("savings", Decimal("1828.03")),
        ]
        assert any(line.account == "••0009" for line in ledger.statement(amina, limit=10))


def test_a_fineract_answer_trickling_in_is_cut_off_at_the_time_budget(services: Services) -> None:
    """httpx's timeout bounds each read; the budget bounds the whole answer, so a USSD hop answers in time."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.factories import make_client

    class Trickle(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            body = b'[{"entityId":42,"entityType":"CLIENT"}]' + b" " * 12
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                for start in range(0, len(body), 4):  # 4 bytes every 0.3 s: each read is quick, the whole is not
                    self.wfile.write(body[start : start + 4])
                    self.wfile.flush()
                    time.sleep(0.3)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up: what the test wants

        def log_message(self, *_args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with services.transaction() as session:
        client = make_client(session, external_id="C0500", phones=["+254722000500"])
    core = FineractCoreBanking(f"http://127.0.0.1:{server.server_address[1]}/api/v1", "default", "u", "p", timeout=1.0)
    started = time.monotonic()
    try:
        with pytest.raises(CoreBankingUnavailable, match="in time"):
            core.balances(client)
        assert time.monotonic() - started < 1.6  # the answer alone takes about 4 s
    finally:
        server.shutdown()
