"""Apache Fineract as a `CoreBanking` adapter, through the staff APIs with one read-only service account.

The client is found by mobile number (`GET /search?resource=clients&exactMatch=true`, channels.md §8.5; the id it
finds is remembered in Redis for a day, `RedisClientIds`, so later requests skip the search), then
`GET /clients/{id}/accounts`, `GET /loans/{id}?associations=repaymentSchedule|transactions` and
`GET /savingsaccounts/{id}?associations=transactions`. Fineract's JSON omits null fields, writes dates as
`[y, m, d]` and enums as `{id, code, value}`; parsing tolerates all three. Every failure (refused credentials, 404,
500, a timeout, JSON that is not what we expect) becomes `CoreBankingUnavailable`. `timeout` is the budget for a
whole `balances()` or `statement()` call, not per request, so a slow core system cannot hold a USSD screen.

`base_url` includes the API root, e.g. `https://core.example.org:8443/fineract-provider/api/v1`.

Loan detail, as Fineract sends it (abridged):
    {"id":7,"accountNo":"000000007","loanProductName":"Group Loan 12w","currency":{"code":"KES","decimalPlaces":2},
     "summary":{"totalOutstanding":8450.0,"totalOverdue":0.0},
     "repaymentSchedule":{"periods":[{"period":6,"dueDate":[2025,4,14],"complete":false,
                                      "totalOutstandingForPeriod":1800.0}]}}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any, Protocol, TypeVar

import httpx
import phonenumbers
import redis
from sqlalchemy import select
from sqlalchemy.orm import object_session

from accounts.corebanking import (
    CACHE_PREFIX,
    AccountBalance,
    ClientNotInCoreBanking,
    CoreBankingUnavailable,
    StatementLine,
    mask_account_number,
)
from accounts.models import Client, ClientPhone
from db import utcnow

logger = logging.getLogger(__name__)

T = TypeVar("T")

TENANT_HEADER = "Fineract-Platform-TenantId"

LOAN_TRANSACTION_KINDS = {
    "loanTransactionType.disbursement": "disbursement",
    "loanTransactionType.repayment": "repayment",
    "loanTransactionType.repaymentAtDisbursement": "repayment",
    "loanTransactionType.merchantIssuedRefund": "repayment",
    "loanTransactionType.payoutRefund": "repayment",
    "loanTransactionType.goodwillCredit": "repayment",
    "loanTransactionType.applyCharges": "fee",
    "loanTransactionType.waiveCharges": "waiver",
    "loanTransactionType.waiver": "waiver",
    "loanTransactionType.writeOff": "write_off",
}
SAVINGS_TRANSACTION_KINDS = {
    "savingsAccountTransactionType.deposit": "deposit",
    "savingsAccountTransactionType.withdrawal": "withdrawal",
    "savingsAccountTransactionType.interestPosting": "interest",
    "savingsAccountTransactionType.withdrawalFee": "fee",
    "savingsAccountTransactionType.annualFee": "fee",
    "savingsAccountTransactionType.payCharge": "fee",
    "savingsAccountTransactionType.overdraftInterest": "fee",
}
INTERNAL_TRANSACTION_WORDS = ("accrual",)  # bookkeeping entries a client never asked about


# Which Fineract client each of ours is rarely changes (Fineract's ids are stable, and the key changes with the phones
# the search went by: `_identity_key`), so the search that finds it is remembered for a day.
CLIENT_ID_SECONDS = 24 * 3600


class ClientIds(Protocol):
    """Which Fineract client (its id) each of our clients is, as the phone search found it. The key names the client
    and everything the search's choice depended on (`_identity_key`), so a changed phone finds the client anew."""

    def get(self, key: str) -> int | None: ...

    def put(self, key: str, fineract_id: int) -> None: ...

    def forget(self, key: str) -> None: ...


class RedisClientIds:
    """Which Fineract client each of our clients is, shared by every process: the phone search that finds it is one
    of the three or four calls of a balance request, and an adapter lives for one hop. A Redis error means a search."""

    def __init__(self, connection: redis.Redis, ttl: int = CLIENT_ID_SECONDS) -> None:
        self.redis = connection
        self.ttl = ttl

    def get(self, key: str) -> int | None:
        try:
            value = self.redis.get(_redis_key(key))
        except redis.RedisError:
            return None
        return int(value) if value is not None else None

    def put(self, key: str, fineract_id: int) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.set(_redis_key(key), fineract_id, ex=self.ttl)

    def forget(self, key: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.redis.delete(_redis_key(key))


def _redis_key(key: str) -> str:
    return f"{CACHE_PREFIX}:fineract-id:{key}"


class LocalClientIds:
    """The same, kept by one adapter only (tests, and adapters built without Redis)."""

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def get(self, key: str) -> int | None:
        return self._ids.get(key)

    def put(self, key: str, fineract_id: int) -> None:
        self._ids[key] = fineract_id

    def forget(self, key: str) -> None:
        self._ids.pop(key, None)


@cache
def shared_http_client() -> httpx.Client:
    """One pooled client per process; timeouts are set per request from the call's remaining budget."""
    return httpx.Client(follow_redirects=False)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise CoreBankingUnavailable("core banking did not answer in time")
        return left


class FineractCoreBanking:
    def __init__(
        self,
        base_url: str,
        tenant: str,
        username: str,
        password: str,
        timeout: float = 3.0,
        http_client: httpx.Client | None = None,
        clock: Callable[[], datetime] = utcnow,
        client_ids: ClientIds | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tenant = tenant
        self.auth = httpx.BasicAuth(username, password)
        self.timeout = timeout
        self.http = http_client or httpx.Client(follow_redirects=False)
        self.clock = clock
        self.client_ids = client_ids or LocalClientIds()

    # --- CoreBanking ---------------------------------------------------------------------------------------------

    def balances(self, client: Client) -> list[AccountBalance]:
        deadline = _Deadline(self.timeout)
        return self._parsing(lambda: self._balances(client, deadline))

    def statement(self, client: Client, limit: int = 5) -> list[StatementLine]:
        deadline = _Deadline(self.timeout)
        return self._parsing(lambda: self._statement(client, limit, deadline))

    # --- the calls -----------------------------------------------------------------------------------------------

    def _balances(self, client: Client, deadline: _Deadline) -> list[AccountBalance]:
        accounts = self._accounts(client, deadline)
        now = self.clock()
        loans = [self._loan_balance(loan, deadline, now) for loan in _active(accounts.get("loanAccounts"))]
        savings = [_savings_balance(saving, now) for saving in _active(accounts.get("savingsAccounts"))]
        return loans + savings

    def _statement(self, client: Client, limit: int, deadline: _Deadline) -> list[StatementLine]:
        accounts = self._accounts(client, deadline)
        lines: list[tuple[date, int, StatementLine]] = []
        for loan in _active(accounts.get("loanAccounts")):
            detail = self._get(f"/loans/{loan['id']}", deadline, associations="transactions")
            lines += _loan_statement(detail)
        for saving in _active(accounts.get("savingsAccounts")):
            detail = self._get(f"/savingsaccounts/{saving['id']}", deadline, associations="transactions")
            lines += _savings_statement(detail)
        lines.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)
        return [line for _date, _id, line in lines[:limit]]

    def _accounts(self, client: Client, deadline: _Deadline) -> dict[str, Any]:
        shared = _shared_phones(client)
        key = _identity_key(client, shared)
        fineract_id = self.client_ids.get(key)
        if fineract_id is None:
            fineract_id = self._search_client(client, shared, deadline)
            self.client_ids.put(key, fineract_id)
        try:
            accounts = self._get(f"/clients/{fineract_id}/accounts", deadline)
        except CoreBankingUnavailable:
            self.client_ids.forget(key)  # a remembered id that no longer works: search again next time
            raise
        if not isinstance(accounts, dict):
            raise CoreBankingUnavailable("unexpected accounts response")
        return accounts

    def _loan_balance(self, summary: dict[str, Any], deadline: _Deadline, now: datetime) -> AccountBalance:
        detail = self._get(f"/loans/{summary['id']}", deadline, associations="repaymentSchedule")
        totals = detail.get("summary") or {}
        next_due_date, next_due_amount = _next_due(detail)
        return AccountBalance(
            kind="loan",
            masked_number=mask_account_number(str(detail.get("accountNo") or summary["accountNo"])),
            product_name=str(detail.get("loanProductName") or summary.get("productName") or "Loan"),
            currency=_currency(detail) or _currency(summary),
            balance=_money(totals.get("totalOutstanding", summary.get("loanBalance", 0))),
            next_due_date=next_due_date,
            next_due_amount=next_due_amount,
            arrears=_money(totals.get("totalOverdue", 0)),
            as_of=now,
        )

    def _search_client(self, client: Client, shared: set[str], deadline: _Deadline) -> int:
        for phone, query in _phone_queries(client):
            hits = self._get("/search", deadline, query=query, resource="clients", exactMatch="true")
            chosen = _choose_client(hits, client, phone_is_shared=phone in shared)
            if chosen is not None:
                return chosen
        raise ClientNotInCoreBanking("no single core banking client has this phone number")

    def _get(self, path: str, deadline: _Deadline, **params: str) -> Any:
        """GET within what is left of the call's budget. httpx's timeout bounds each read, not the whole answer, so
        the body is read chunk by chunk against the deadline: a server trickling its answer cannot hold a USSD hop
        past the gateway's own time-out."""
        try:
            with self.http.stream(
                "GET",
                self.base_url + path,
                params=params or None,
                auth=self.auth,
                headers={TENANT_HEADER: self.tenant, "Accept": "application/json"},
                timeout=httpx.Timeout(deadline.remaining()),
            ) as response:
                if response.status_code != 200:
                    logger.warning("Fineract answered %s to %s", response.status_code, path.split("?")[0])
                    raise CoreBankingUnavailable(f"core banking answered HTTP {response.status_code}")
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    deadline.remaining()  # raises once the budget is spent
        except httpx.TimeoutException as exc:
            raise CoreBankingUnavailable("core banking did not answer in time") from exc
        except httpx.HTTPError as exc:
            raise CoreBankingUnavailable(f"core banking unreachable: {type(exc).__name__}") from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise CoreBankingUnavailable("core banking answered something that is not JSON") from exc

    @staticmethod
    def _parsing(call: Callable[[], T]) -> T:
        try:
            return call()
        except (KeyError, TypeError, ValueError, AttributeError, IndexError, InvalidOperation) as exc:
            raise CoreBankingUnavailable(f"unexpected core banking response ({type(exc).__name__})") from exc


# --- parsing Fineract shapes (pure) ----------------------------------------------------------------------------


def _phone_queries(client: Client) -> list[tuple[str, str]]:
    """(phone, query) for each phone as E.164, then in national form: Fineract stores `mobileNo` as it was typed."""
    queries: list[tuple[str, str]] = []
    for phone in sorted(entry.phone for entry in client.phones):
        queries.append((phone, phone))
        try:
            number = phonenumbers.parse(phone)
        except phonenumbers.NumberParseException:
            continue
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL).replace(" ", "")
        if national != phone:
            queries.append((phone, national))
    return queries


def _shared_phones(client: Client) -> set[str]:
    """The client's phones that other clients of ours use too (a family phone)."""
    session = object_session(client)
    phones = [entry.phone for entry in client.phones]
    if session is None or not phones:
        return set()
    query = select(ClientPhone.phone).where(ClientPhone.phone.in_(phones), ClientPhone.client_id != client.id)
    return set(session.scalars(query))


def _identity_key(client: Client, shared: set[str]) -> str:
    """Our client's id and a digest of what the search's choice depends on: the phones, which of them others use
    too, the external id. Any change to them (a corrected phone, a family member added on it) searches again."""
    phones = sorted(entry.phone for entry in client.phones)
    basis = json.dumps([client.external_id, phones, sorted(shared)])
    return f"{client.id}:{hashlib.sha256(basis.encode()).hexdigest()[:16]}"


def _choose_client(hits: Any, client: Client, *, phone_is_shared: bool = False) -> int | None:
    """The Fineract client behind a phone search: the one whose external id, account number or id is ours. A single
    hit that names no external id is taken as ours only when no other client of ours has the phone: Fineract may
    have a family phone on the other client's record only, and leaves out an external id it does not have."""
    candidates = [hit for hit in hits or [] if str(hit.get("entityType", "CLIENT")).upper() == "CLIENT"]
    ours = {client.external_id}
    matching = [
        hit
        for hit in candidates
        if {str(hit.get("entityExternalId")), str(hit.get("entityAccountNo")), str(hit.get("entityId"))} & ours
    ]
    if len(matching) == 1:
        return int(matching[0]["entityId"])
    if len(candidates) == 1 and not matching and not candidates[0].get("entityExternalId") and not phone_is_shared:
        return int(candidates[0]["entityId"])
    return None


def _active(accounts: Any) -> list[dict[str, Any]]:
    return [account for account in accounts or [] if _is_active(account.get("status"))]


def _is_active(status: Any) -> bool:
    if not isinstance(status, dict):
        return False
    if "active" in status:
        return bool(status["active"])
    return str(status.get("code", "")).endswith(".active")


def _next_due(detail: dict[str, Any]) -> tuple[date | None, Decimal | None]:
    """The first unpaid instalment of the repayment schedule (the disbursement row has no `period` number)."""
    periods = (detail.get("repaymentSchedule") or {}).get("periods") or []
    for period in periods:
        if "period" in period and not period.get("complete", False):
            amount = period.get("totalOutstandingForPeriod", period.get("totalDueForPeriod"))
            return _date(period.get("dueDate")), None if amount is None else _money(amount)
    delinquent = detail.get("delinquent") or {}
    return _date(delinquent.get("nextPaymentDueDate")), None


def _savings_balance(summary: dict[str, Any], now: datetime) -> AccountBalance:
    return AccountBalance(
        kind="savings",
        masked_number=mask_account_number(str(summary["accountNo"])),
        product_name=str(summary.get("productName") or "Savings"),
        currency=_currency(summary),
        balance=_money(summary.get("accountBalance", 0)),
        next_due_date=None,
        next_due_amount=None,
        arrears=Decimal("0"),
        as_of=now,
    )


def _loan_statement(detail: dict[str, Any]) -> list[tuple[date, int, StatementLine]]:
    masked, currency = mask_account_number(str(detail["accountNo"])), _currency(detail)
    lines = []
    for entry in detail.get("transactions") or []:
        code = str((entry.get("type") or {}).get("code", ""))
        if entry.get("manuallyReversed") or _internal(code):
            continue
        kind = LOAN_TRANSACTION_KINDS.get(code, "other")
        lines.append(_line(entry, kind, currency, masked))
    return lines


def _savings_statement(detail: dict[str, Any]) -> list[tuple[date, int, StatementLine]]:
    masked, currency = mask_account_number(str(detail["accountNo"])), _currency(detail)
    lines = []
    for entry in detail.get("transactions") or []:
        code = str((entry.get("transactionType") or {}).get("code", ""))
        if entry.get("reversed") or _internal(code):
            continue
        kind = SAVINGS_TRANSACTION_KINDS.get(code, "other")
        lines.append(_line(entry, kind, currency, masked))
    return lines


def _line(entry: dict[str, Any], kind: str, currency: str, masked: str) -> tuple[date, int, StatementLine]:
    when = _date(entry["date"])
    if when is None:
        raise ValueError("transaction without a date")
    line = StatementLine(date=when, kind=kind, amount=_money(entry["amount"]), currency=currency, account=masked)
    return when, int(entry.get("id", 0)), line


def _internal(code: str) -> bool:
    return any(word in code.lower() for word in INTERNAL_TRANSACTION_WORDS)


def _currency(payload: dict[str, Any]) -> str:
    currency = payload.get("currency") or {}
    return str(currency.get("code", "")) if isinstance(currency, dict) else str(currency)


def _money(value: Any) -> Decimal:
    """JSON numbers arrive as floats; go through str so 1828.03 stays 1828.03."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not an amount: {value!r}")
    return Decimal(str(value))


def _date(value: Any) -> date | None:
    """Fineract dates are `[y, m, d]`; accept ISO strings too (SPM and newer endpoints)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        year, month, day = value[:3]
        return date(int(year), int(month), int(day))
    return date.fromisoformat(str(value)[:10])
