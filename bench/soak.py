"""Soak: mixed traffic against gunicorn (the Procfile's web processes) and one RQ worker on PostgreSQL + Redis.

Run: .venv/bin/python bench/soak.py [--minutes 10] [--concurrency 20] [--worker simple|fork]
     [--worker-class sync|gthread] [--workers 3] [--threads 1]

Traffic, drawn in a fixed rotation: USSD PPI surveys (13 hops, a fresh client each time from a pool), USSD balance
checks (dial, 2, PIN), SMS through Africa's Talking's SMS webhook (with no AT credentials configured, the replies go
through the outbox to the console channel, so nothing leaves the machine; the console webhook does not exist in
production), Telegram webhook updates with the secret header (replies go through the outbox to a fake Bot API on
127.0.0.1), and API reads with an admin key. Reported: requests/s and p99 per kind, errors (target none), the
outbox drained at the end, and the RSS of each web process at the start (after a 20 s warm-up) and the end, sampled
every minute (target flat, under 150 MB each). Not run in CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_balance import balance_job, seed_activated_clients  # noqa: E402
from bench_ussd import seed_survey_clients, survey_job  # noqa: E402
from common import Recorder, timed_get, timed_post  # noqa: E402

DATABASE = "ic_bench_soak"
REDIS_DB = 10
SURVEY_CLIENTS = 3000
BALANCE_CLIENTS = 300
ROTATION = ("survey", "sms", "balance", "telegram", "sms", "api", "telegram", "balance", "sms", "api")


def admin_key(services: Any) -> str:
    from api.keys import create_key
    from db import utcnow

    with services.transaction() as session:
        return create_key(session, scope="admin", name="soak", now=utcnow())[1]


def sms_job(phone: str, n: int, tag: str) -> common.Job:
    async def job(http: Any, recorder: Recorder) -> None:
        form = {
            "from": phone,
            "to": "22384",
            "text": "Hi" if n % 2 else "1",
            "id": f"soak-sms-{tag}-{n}",
            "date": "2026-11-23 09:31:07",
        }
        await timed_post(http, recorder, "sms (AT webhook)", "/webhooks/africastalking/sms", data=form)

    return job


def telegram_job(n: int, tag: str) -> common.Job:
    chat_id = 7_770_000_000 + n % 500
    update = {
        "update_id": (900_000_000 if tag == "warm" else 100_000_000) + n,
        "message": {
            "message_id": n,
            "date": int(time.time()),
            "text": "/start",
            "chat": {"id": chat_id, "type": "private", "first_name": "Soak"},
            "from": {"id": chat_id, "is_bot": False, "first_name": "Soak"},
        },
    }
    headers = {"X-Telegram-Bot-Api-Secret-Token": common.TELEGRAM_SECRET, "Content-Type": "application/json"}

    async def job(http: Any, recorder: Recorder) -> None:
        await timed_post(
            http, recorder, "telegram webhook", "/webhooks/telegram", data=json.dumps(update), headers=headers
        )

    return job


def api_job(key: str, n: int) -> common.Job:
    headers = {"Authorization": f"Bearer {key}"}

    async def job(http: Any, recorder: Recorder) -> None:
        listing = await timed_get(http, recorder, "api read", "/api/v1/clients?limit=20", headers)
        items = listing.get("items") or listing.get("clients") or []
        if items and n % 2:
            external_id = items[n % len(items)].get("external_id")
            await timed_get(http, recorder, "api read", f"/api/v1/clients/{external_id}", headers)

    return job


def traffic(
    survey_phones: list[str], balance_phones: list[str], key: str, limit: int, tag: str = "run"
) -> Iterator[common.Job]:
    """The rotation of sessions, at most `limit` of them (the deadline usually stops it first)."""
    surveys = itertools.cycle(survey_phones)
    balances = itertools.cycle(balance_phones)
    for n, kind in enumerate(itertools.islice(itertools.cycle(ROTATION), limit)):
        if kind == "survey":
            yield survey_job(next(surveys), f"ATUid_soak_{tag}_s{n}")
        elif kind == "balance":
            yield balance_job(next(balances), f"ATUid_soak_{tag}_b{n}", 0.0)
        elif kind == "sms":
            yield sms_job(balance_phones[n % len(balance_phones)], n, tag)
        elif kind == "telegram":
            yield telegram_job(n, tag)
        else:
            yield api_job(key, n)


class MemoryWatch:
    """Samples the RSS of the given processes every `interval` seconds in a thread, until stopped."""

    def __init__(self, pids: dict[str, int], interval: float = 60) -> None:
        self.pids = pids
        self.interval = interval
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.started = time.monotonic()

    def sample(self) -> None:
        self.samples.append((time.monotonic() - self.started, {n: common.rss_mb(p) for n, p in self.pids.items()}))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> MemoryWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()


def outbox_status(services: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from gateway.models import OutboxMessage

    with services.transaction() as session:
        rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    return {str(status): int(count) for status, count in rows}


def soak(args: argparse.Namespace, folder: Path) -> bool:
    database_url = common.fresh_database(DATABASE)
    redis_url = common.fresh_redis(REDIS_DB)
    services = common.bench_services(database_url, redis_url)
    survey_phones = seed_survey_clients(services, SURVEY_CLIENTS)
    balance_phones = seed_activated_clients(services, BALANCE_CLIENTS)
    key = admin_key(services)
    seconds = args.minutes * 60
    settings = {
        "telegram_bot_token": common.TELEGRAM_TOKEN,
        "telegram_webhook_secret": common.TELEGRAM_SECRET,
        "sms_per_second": 1000,
        "rate_limit_per_key_per_minute": 100_000,
    }
    with common.fake_telegram(seconds + 600, folder / "fake_telegram.log") as fake_url:
        env = common.server_env(database_url, redis_url, **settings)
        env[common.FAKE_TELEGRAM_ENV] = fake_url
        env.update(item.split("=", 1) for item in args.env)
        worker = common.start_python(
            f"import common; common.worker_main(simple={args.worker == 'simple'})", env, folder / "worker.log"
        )
        try:
            with common.Gunicorn(
                "common:guarded_app()", env, worker_class=args.worker_class, workers=args.workers, threads=args.threads
            ) as server:
                warm = list(itertools.islice(traffic(survey_phones, balance_phones, key, 40, "warm"), 40))
                asyncio.run(common.drive(server.url, warm, concurrency=args.concurrency, seconds=20))
                pids = {f"web {n + 1} (pid {pid})": pid for n, pid in enumerate(server.worker_pids())}
                pids[f"rq worker (pid {worker.pid})"] = worker.pid
                jobs = traffic(survey_phones[40:], balance_phones, key, 10_000_000)
                with MemoryWatch(pids) as memory:
                    recorder = asyncio.run(
                        common.drive(server.url, jobs, concurrency=args.concurrency, seconds=seconds)
                    )
            backlog = services.queue.count
            drain_started = time.monotonic()
            with contextlib.suppress(TimeoutError):
                common.wait_until(lambda: services.queue.count == 0, seconds=args.drain_seconds, what="outbox drain")
            drain_seconds = time.monotonic() - drain_started
            time.sleep(2)
        finally:
            common.stop(worker)
        telegram_sends = sum(common.fake_telegram_counts(fake_url).values())
    print(f"\nqueue backlog when the load stopped: {backlog:,} jobs; drained for {drain_seconds:.0f} s")
    ok = report(recorder, memory, outbox_status(services), telegram_sends)
    services.dispose()
    return ok


def report(recorder: Recorder, memory: MemoryWatch, outbox: dict[str, int], telegram_sends: int) -> bool:
    total = recorder.summary()
    print(
        f"\n== soak: {recorder.elapsed / 60:.1f} min, {total['requests']:,} requests = {total['per_second']:,.0f}/s, "
        f"p99 {total['p99_ms']:.0f} ms, errors {len(recorder.errors)} =="
    )
    for label in sorted(recorder.latencies):
        s = recorder.summary(label)
        print(
            f"  {label:<24} {s['requests']:>7,}  {s['per_second']:6.1f}/s  p50 {s['p50_ms']:6.1f} ms  "
            f"p99 {s['p99_ms']:7.1f} ms"
        )
    if recorder.errors:
        print(f"  first errors: {recorder.errors[:5]}")
    print(f"  outbox after draining: {outbox}; fake Telegram received {telegram_sends:,}")
    print("  RSS (MB) over time:")
    names = list(memory.samples[0][1])
    print("    " + "".join(f"{name:>28}" for name in ["minute"] + names))
    for at, values in memory.samples:
        print("    " + f"{at / 60:>28.1f}" + "".join(f"{values[name]:>28.1f}" for name in names))
    first, last = memory.samples[0][1], memory.samples[-1][1]
    web = [name for name in names if name.startswith("web")]
    flat = all(last[name] < 150 and last[name] - first[name] < 15 for name in web)
    print(
        f"  web RSS start -> end: {', '.join(f'{first[n]:.0f} -> {last[n]:.0f}' for n in web)} MB: "
        f"{'flat and under 150 MB' if flat else 'GROWING or over 150 MB'}"
    )
    return flat and not recorder.errors and not outbox.get("queued")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--worker", default="simple", choices=["simple", "fork"])
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"], help="as the Procfile's")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the Procfile's WEB_CONCURRENCY)")
    parser.add_argument("--threads", type=int, default=1, help="threads per gthread worker")
    parser.add_argument("--drain-seconds", type=float, default=300, help="wait for the outbox after the load")
    parser.add_argument("--env", nargs="*", default=[], help="extra NAME=VALUE for the server processes")
    args = parser.parse_args()
    common.exit_on_sigterm()
    print(f"machine: {common.machine_note()}")
    with tempfile.TemporaryDirectory() as folder:
        ok = soak(args, Path(folder))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
