"""Where a client's balances and transactions come from: the built-in ledger or Apache Fineract, behind one Protocol.

The conversation shell asks `build_core_banking(services, session)` for an adapter and calls `balances(client)` /
`statement(client)`; it never knows which system answered. Remote systems fail and are slow, so the Fineract adapter
is wrapped in `CachedCoreBanking`: a short cache spares repeated calls within a USSD session, and a long-lived "last
known" copy lets a client still see a (labelled) balance when the core system is down. Beneath the cache a
`CircuitBreaker` stops calling a core system that keeps failing, for every process at once, so that its callers fall
back straight away instead of each waiting out its time budget.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from accounts.models import Account, Client, LoanProduct, Transaction
from db import utcnow

if TYPE_CHECKING:
    from bootstrap import Services

logger = logging.getLogger(__name__)
T = TypeVar("T")

LAST_KNOWN_SECONDS = 30 * 24 * 3600
CACHE_PREFIX = "corebanking"


class CoreBankingUnavailable(RuntimeError):
    """The core banking system could not answer (down, refused our credentials, too slow, or answered nonsense)."""


class ClientNotInCoreBanking(CoreBankingUnavailable):
    """The core banking system answered, and no single client of its own (or more than one, and none matching our
    external id) has this client's phone: a fact about the client, not a failure of the system (the circuit breaker
    does not count it)."""


@dataclass(frozen=True)
class AccountBalance:
    kind: str  # loan | savings
    masked_number: str  # "••1234"
    product_name: str
    currency: str
    balance: Decimal  # outstanding for loans
    next_due_date: date | None
    next_due_amount: Decimal | None
    arrears: Decimal
    as_of: datetime
    stale: bool = False  # served from the last-known copy because the core system was unavailable


@dataclass(frozen=True)
class StatementLine:
    date: date
    kind: str  # disbursement, repayment, deposit, withdrawal, fee, interest, other
    amount: Decimal
    currency: str
    account: str  # masked number


class CoreBanking(Protocol):
    def balances(self, client: Client) -> list[AccountBalance]: ...

    def statement(self, client: Client, limit: int = 5) -> list[StatementLine]: ...


def mask_account_number(number: str) -> str:
    """'000000007' -> '••0007': enough for the client to tell accounts apart, useless to anyone else."""
    return "••" + number[-4:]


# Accounts a client is shown: like Fineract, active ones, dormant included (in Fineract dormant is a sub-status of
# an active savings account: the money is still there).
OPEN_STATUSES = ("active", "dormant")


class LedgerCoreBanking:
    """Reads the built-in ledger tables (filled by the CSV import); like Fineract, only open accounts count."""

    def __init__(self, session: Session, clock: Callable[[], datetime] = utcnow) -> None:
        self.session = session
        self.clock = clock

    def balances(self, client: Client) -> list[AccountBalance]:
        query = (
            select(Account, LoanProduct.name)
            .outerjoin(LoanProduct, Account.product_id == LoanProduct.id)
            .where(Account.client_id == client.id, Account.status.in_(OPEN_STATUSES))
            .order_by(Account.kind, Account.id)
        )
        now = self.clock()
        return [self._balance(account, product_name, now) for account, product_name in self.session.execute(query)]

    def _balance(self, account: Account, product_name: str | None, now: datetime) -> AccountBalance:
        return AccountBalance(
            kind=account.kind,
            masked_number=mask_account_number(account.external_id),
            product_name=product_name or account.kind.capitalize(),
            currency=account.currency,
            balance=Decimal(account.balance),
            next_due_date=account.next_due_date,
            next_due_amount=None if account.next_due_amount is None else Decimal(account.next_due_amount),
            arrears=Decimal(account.arrears or 0),
            as_of=now,
        )

    def statement(self, client: Client, limit: int = 5) -> list[StatementLine]:
        query = (
            select(Transaction, Account.external_id, Account.currency)
            .join(Account, Transaction.account_id == Account.id)
            .where(Account.client_id == client.id, Account.status.in_(OPEN_STATUSES))
            .order_by(Transaction.occurred_on.desc(), Transaction.id.desc())
            .limit(limit)
        )
        return [
            StatementLine(
                date=row.occurred_on,
                kind=row.kind,
                amount=Decimal(row.amount),
                currency=currency,
                account=mask_account_number(number),
            )
            for row, number, currency in self.session.execute(query)
        ]


class CachedCoreBanking:
    """Caches balances in Redis for `ttl` seconds, and serves a stale last-known copy when the inner system fails."""

    def __init__(self, inner: CoreBanking, connection: redis.Redis, ttl: int) -> None:
        self.inner = inner
        self.redis = connection
        self.ttl = ttl

    def balances(self, client: Client) -> list[AccountBalance]:
        fresh_key, last_key = self._keys(client)
        cached = self._read(fresh_key)
        if cached is not None:
            return cached
        try:
            balances = self.inner.balances(client)
        except CoreBankingUnavailable:
            last_known = self._read(last_key)
            if last_known is None:
                raise
            logger.warning("core banking unavailable; serving last-known balances for client %s", client.id)
            return [replace(balance, stale=True) for balance in last_known]
        payload = _dump_balances(balances)
        pipe = self.redis.pipeline()
        pipe.set(fresh_key, payload, ex=max(1, self.ttl))
        pipe.set(last_key, payload, ex=LAST_KNOWN_SECONDS)
        pipe.execute()
        return balances

    def statement(self, client: Client, limit: int = 5) -> list[StatementLine]:
        return self.inner.statement(client, limit)

    def forget(self, client: Client) -> None:
        """Drop the short cache (e.g. right after a repayment), keeping the last-known copy."""
        self.redis.delete(self._keys(client)[0])

    def _keys(self, client: Client) -> tuple[str, str]:
        return f"{CACHE_PREFIX}:balances:{client.id}", f"{CACHE_PREFIX}:last-known:{client.id}"

    def _read(self, key: str) -> list[AccountBalance] | None:
        raw: bytes | str | None = self.redis.get(key)
        if raw is None:
            return None
        try:
            return _load_balances(raw)
        except (ValueError, KeyError, TypeError):
            logger.warning("ignoring an unreadable balance cache entry")
            return None


class CircuitBreaker:
    """After `failures` failed calls with no success between them, no process calls the remote system for `pause`
    seconds: each call fails at once with `CoreBankingUnavailable`, which the callers already handle (the labelled
    last-known balance, else the "not available" notice). After the pause one call, from whichever process comes
    first, tries the system while the others still fail at once (for at most `probe` seconds, the longest a call
    may take): its failure pauses the system again, its success clears the count and every call goes through.

    Why: a core banking system that hangs costs each caller its whole time budget (FINERACT_TIMEOUT_SECONDS), and a
    web worker is held meanwhile; a few balance requests a second would hold every worker and stall every survey.
    The count and the pause live in Redis, shared by the web and RQ processes, and expire by Redis's clock.

    Written here rather than taken from pybreaker: its CircuitBreaker holds one lock for the whole guarded call, so
    the threads of a gthread worker would queue behind each other's slow calls, and its Redis storage makes several
    round trips per call where this makes one. A Redis failure never blocks a call: the breaker then stays closed.
    """

    def __init__(self, connection: redis.Redis, *, name: str, failures: int, pause: int, probe: int) -> None:
        self.redis = connection
        self.failures = failures
        self.pause = pause
        self.probe = probe
        self._paused_key = f"{CACHE_PREFIX}:breaker:{name}:paused"
        self._count_key = f"{CACHE_PREFIX}:breaker:{name}:failures"
        self._probe_key = f"{CACHE_PREFIX}:breaker:{name}:probe"

    def call(self, func: Callable[..., T], *args: Any) -> T:
        paused, count = self._read()
        if paused or (count >= self.failures and not self._take_probe()):
            raise CoreBankingUnavailable("core banking paused after repeated failures")
        try:
            result = func(*args)
        except ClientNotInCoreBanking:
            self._succeeded(count)  # the system answered: this client is not in it
            raise
        except CoreBankingUnavailable:
            self._failed()
            raise
        self._succeeded(count)
        return result

    def _read(self) -> tuple[bool, int]:
        """Whether the system is paused, and its failures in a row so far."""
        try:
            paused, count = self.redis.mget(self._paused_key, self._count_key)
        except redis.RedisError:
            return False, 0
        return paused is not None, int(count or 0)

    def _take_probe(self) -> bool:
        """The right to make the one trial call after a pause (False: another process is making it)."""
        try:
            return bool(self.redis.set(self._probe_key, 1, ex=self.probe, nx=True))
        except redis.RedisError:
            return True

    def _failed(self) -> None:
        try:
            pipe = self.redis.pipeline()
            pipe.incr(self._count_key)
            pipe.expire(self._count_key, 2 * self.pause)  # outlives the pause: one failure after it pauses again
            count = int(pipe.execute()[0])
            if count >= self.failures and self.redis.set(self._paused_key, count, ex=self.pause, nx=True):
                self.redis.delete(self._probe_key)  # a failed trial call: the next one comes after this pause
                logger.warning("core banking failed %d times in a row: not called for %d s", count, self.pause)
        except redis.RedisError:
            pass

    def _succeeded(self, count: int) -> None:
        if not count:
            return
        try:
            self.redis.delete(self._count_key, self._probe_key)
        except redis.RedisError:
            pass


class GuardedCoreBanking:
    """A core banking adapter whose calls go through a `CircuitBreaker`."""

    def __init__(self, inner: CoreBanking, breaker: CircuitBreaker) -> None:
        self.inner = inner
        self.breaker = breaker

    def balances(self, client: Client) -> list[AccountBalance]:
        return self.breaker.call(self.inner.balances, client)

    def statement(self, client: Client, limit: int = 5) -> list[StatementLine]:
        return self.breaker.call(self.inner.statement, client, limit)


def _dump_balances(balances: list[AccountBalance]) -> str:
    return json.dumps([asdict(balance) for balance in balances], default=_json_default)


def _json_default(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"cannot cache {type(value).__name__}")


def _load_balances(raw: bytes | str) -> list[AccountBalance]:
    return [_load_balance(item) for item in json.loads(raw)]


def _load_balance(item: dict[str, Any]) -> AccountBalance:
    return AccountBalance(
        kind=item["kind"],
        masked_number=item["masked_number"],
        product_name=item["product_name"],
        currency=item["currency"],
        balance=Decimal(item["balance"]),
        next_due_date=date.fromisoformat(item["next_due_date"]) if item["next_due_date"] else None,
        next_due_amount=Decimal(item["next_due_amount"]) if item["next_due_amount"] is not None else None,
        arrears=Decimal(item["arrears"]),
        as_of=datetime.fromisoformat(item["as_of"]),
        stale=bool(item.get("stale", False)),
    )


def build_core_banking(services: Services, session: Session) -> CoreBanking:
    """The adapter `settings.core_banking` names: the ledger as is, Fineract behind the balance cache."""
    settings = services.settings
    if settings.core_banking != "fineract":
        return LedgerCoreBanking(session)
    from accounts.fineract import FineractCoreBanking, RedisClientIds, shared_http_client

    fineract = FineractCoreBanking(
        base_url=settings.fineract_url,
        tenant=settings.fineract_tenant,
        username=settings.fineract_username,
        password=settings.fineract_password,
        timeout=settings.fineract_timeout_seconds,
        http_client=shared_http_client(),
        client_ids=RedisClientIds(services.redis),
    )
    breaker = CircuitBreaker(
        services.redis,
        name="fineract",
        failures=settings.fineract_breaker_failures,
        pause=settings.fineract_breaker_seconds,
        probe=math.ceil(settings.fineract_timeout_seconds) + 1,
    )
    return CachedCoreBanking(GuardedCoreBanking(fineract, breaker), services.redis, ttl=settings.balance_cache_seconds)
