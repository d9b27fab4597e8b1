"""Benchmark: the balance screen over USSD at 50 concurrent sessions on the built-in ledger (PostgreSQL + Redis).

Run: .venv/bin/python bench/bench_balance.py [--clients 600] [--concurrency 50] [--think-ms 0 1500]

Clients are seeded already activated (a PIN set, an argon2id hash) with a loan, a savings account and a few
transactions. Each session dials, chooses 2 (Balances), enters the PIN and must see its masked balances: the last
hop, "the balance hop", does the PIN check (argon2 verify) and reads the ledger. Every client is used once per pass;
pass 1 reads the ledger (cache cold), pass 2 repeats the same clients within BALANCE_CACHE_SECONDS (cache warm).

`--think-ms 0` is the stress case: no pause between hops, so 50 sessions keep 50 requests queued at 2 workers and
latency is mostly queueing (Little's law: latency = sessions / throughput). A positive value pauses before each
hop like a person reading the screen, which is what 50 real concurrent USSD sessions look like. The argon2 verify
cost per PIN is measured separately, in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Gunicorn, Recorder, UssdPhone  # noqa: E402

DATABASE = "ic_bench_balance"
REDIS_DB = 10
PIN = "4826"
PHONE_BASE = 254_700_200_000
BALANCE_HOP = "balance (PIN + ledger)"


def seed_activated_clients(services: Any, count: int) -> list[str]:
    """`count` clients with a PIN, a loan ending in its number, savings and five repayments each."""
    from accounts.models import LoanProduct, Transaction
    from accounts.pins import hash_secret
    from tests.factories import make_client, make_office

    pin_hash = hash_secret(PIN)  # one argon2id hash (with its own salt) serves every client: seeding stays fast
    phones = [f"+{PHONE_BASE + n}" for n in range(count)]
    with services.transaction() as session:
        office = make_office(session, level="branch")
        product = LoanProduct(external_id="P-BENCH", name="Biashara loan")
        session.add(product)
        session.flush()
        for n, phone in enumerate(phones):
            client = make_client(session, phones=[phone], office=office, language="en")
            client.pin_hash = pin_hash
            loan = _account(client.id, f"LN{n:07d}", "loan", Decimal("12500.00"), product.id)
            savings = _account(client.id, f"SV{n:07d}", "savings", Decimal("3200.50"), None)
            session.add_all([loan, savings])
            session.flush()
            session.add_all(
                Transaction(
                    external_id=f"T{n}-{k}",
                    account_id=loan.id,
                    kind="repayment",
                    occurred_on=date.today() - timedelta(days=30 * k),
                    amount=Decimal("1500.00"),
                )
                for k in range(5)
            )
    return phones


def _account(client_id: int, number: str, kind: str, balance: Decimal, product_id: int | None) -> Any:
    from accounts.models import Account

    loan = kind == "loan"
    return Account(
        external_id=number,
        client_id=client_id,
        kind=kind,
        product_id=product_id,
        currency="KES",
        balance=balance,
        principal=Decimal("20000") if loan else None,
        next_due_date=date.today() + timedelta(days=9) if loan else None,
        next_due_amount=Decimal("1500.00") if loan else None,
        arrears=Decimal("0"),
    )


def balance_job(number: str, session_id: str, think: float) -> common.Job:
    async def job(http: Any, recorder: Recorder) -> None:
        phone = UssdPhone(http, recorder, number, session_id, think=think)
        menu = await phone.dial()
        phone.expect(menu, menu.startswith("CON "), "dial")
        prompt = await phone.send("2", "balances menu")
        phone.expect(prompt, prompt.startswith("CON ") and "PIN" in prompt, "balances menu")
        balances = await phone.send(PIN, BALANCE_HOP)
        phone.expect(balances, "12,500" in balances and "**" in balances, BALANCE_HOP)

    return job


def argon2_cost(samples: int = 30) -> float:
    """Milliseconds per argon2id PIN verify with the service's parameters, in this process."""
    from accounts.pins import hash_secret, secret_matches

    stored = hash_secret(PIN)
    started = time.perf_counter()
    for _ in range(samples):
        secret_matches(stored, PIN)
    return (time.perf_counter() - started) / samples * 1000


def profile_hops(count: int) -> None:
    """Each hop of `count` balance sessions in-process (Flask test client, PostgreSQL + Redis), one at a time: the
    mean milliseconds per hop and, for the balance hop, the part spent in the argon2 PIN check."""
    from accounts import pins

    app = common.in_process_app(DATABASE, REDIS_DB, balance_cache_seconds=600)
    phones = seed_activated_clients(app.extensions["services"], count + 2)
    client = app.test_client()
    argon2 = {"seconds": 0.0}
    verify = pins.secret_matches

    def timed_verify(stored_hash: str | None, secret: str) -> bool:
        started = time.perf_counter()
        try:
            return verify(stored_hash, secret)
        finally:
            argon2["seconds"] += time.perf_counter() - started

    pins.secret_matches = timed_verify  # type: ignore[assignment]
    import accounts.service

    accounts.service.secret_matches = timed_verify  # type: ignore[assignment]
    totals = {"dial": 0.0, "balances menu": 0.0, BALANCE_HOP: 0.0}
    for n, phone in enumerate(phones):
        history: list[str] = []
        for label, text in (("dial", None), ("balances menu", "2"), (BALANCE_HOP, PIN)):
            if text is not None:
                history.append(text)
            form = {
                "sessionId": f"prof_{n}",
                "serviceCode": "*384*123#",
                "phoneNumber": phone,
                "networkCode": "63902",
                "text": "*".join(history),
            }
            started = time.perf_counter()
            body = client.post(common.USSD_PATH, data=form).get_data(as_text=True)
            if n >= 2:  # the first two warm up imports, pools and caches
                totals[label] += time.perf_counter() - started
        if "12,500" not in body:
            raise RuntimeError(f"unexpected balance screen while profiling: {body[:80]!r}")
    print(f"\n== in-process, {count} sessions one at a time ({common.machine_note()}) ==")
    for label, seconds in totals.items():
        print(f"  {label}: {seconds / count * 1000:.1f} ms per hop")
    print(f"  of which the argon2 PIN check: {argon2['seconds'] / (count + 2) * 1000:.1f} ms per balance hop")
    app.extensions["services"].dispose()


def run(args: argparse.Namespace, think_ms: float) -> bool:
    database_url = common.fresh_database(DATABASE)
    redis_url = common.fresh_redis(REDIS_DB)
    services = common.bench_services(database_url, redis_url)
    phones = seed_activated_clients(services, args.clients)
    services.dispose()
    env = common.server_env(database_url, redis_url, balance_cache_seconds=600)
    think = think_ms / 1000
    print(f"\n== balance sessions, 50 concurrent, think time {think_ms:.0f} ms, gunicorn 2 x {args.worker_class} ==")
    ok = True
    threads = args.threads if args.worker_class == "gthread" else 1
    with Gunicorn("common:guarded_app()", env, worker_class=args.worker_class, threads=threads) as server:
        for label in ("pass 1, ledger read (cache cold)", "pass 2, same clients (cache warm)"):
            jobs = [balance_job(phone, f"ATUid_bal_{label[5]}_{n}", think) for n, phone in enumerate(phones)]
            recorder = asyncio.run(common.drive(server.url, jobs, concurrency=args.concurrency, seconds=args.seconds))
            s = recorder.summary(BALANCE_HOP)
            print(
                f"  {label}: {recorder.completed_sessions:,} sessions in {recorder.elapsed:.1f} s; "
                f"balance hop p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms (target < 150 ms); "
                f"all hops {recorder.summary()['per_second']:,.0f}/s, p99 {recorder.summary()['p99_ms']:.0f} ms; "
                f"errors {len(recorder.errors)}"
            )
            if recorder.errors:
                print(f"    first errors: {recorder.errors[:3]}")
            ok = ok and not recorder.errors and recorder.completed_sessions == len(phones)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=600, help="sessions per pass, one client each")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--think-ms", type=float, nargs="*", default=[0.0, 1500.0], help="one load run per value")
    parser.add_argument("--worker-class", default="gthread", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=300, help="time cap of each pass")
    parser.add_argument("--profile-sessions", type=int, default=50, help="sessions timed in-process (0: skip)")
    args = parser.parse_args()
    common.exit_on_sigterm()
    print(f"machine: {common.machine_note()}")
    print(f"argon2id PIN verify: {argon2_cost():.1f} ms each (in-process, service parameters)")
    if args.profile_sessions:
        profile_hops(args.profile_sessions)
    ok = all([run(args, think_ms) for think_ms in args.think_ms])
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
