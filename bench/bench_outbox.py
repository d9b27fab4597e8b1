"""Benchmark: 10,000 outbox messages delivered by one RQ worker on PostgreSQL + Redis, each sent exactly once.

Run: .venv/bin/python bench/bench_outbox.py [--messages 10000] [--duplicates 1000] [--worker simple fork]

The messages are queued with `gateway.outbox.queue_message` in transactions of 100, on the Telegram channel,
which a fake Bot API on 127.0.0.1 answers (python-telegram-bot does the real HTTP work). Then the first
`--duplicates` idempotency keys are queued a second time, as a retried conversation step would, which enqueues their
send job again. One RQ worker in a subprocess (`simple`: RQ's SimpleWorker, jobs in the worker process; `fork`: a
work horse forked per job, as the production HerokuWorker does) drains the queue in burst mode with
SMS_PER_SECOND=100000. Reported: enqueue rate, delivery rate (messages/s from first to last sent_at, and over the
worker's whole life), and the proof: every outbox row `sent`, and the fake received each text exactly once.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

DATABASE = "ic_bench_outbox"
REDIS_DB = 9
BATCH = 100
CHATS = 500
SMS_PER_SECOND = 100_000


def queue_messages(services: Any, keys: range) -> float:
    """Queue one Telegram message per key, BATCH per transaction; returns the seconds it took."""
    from gateway.outbox import queue_message

    started = time.perf_counter()
    for first in range(keys.start, keys.stop, BATCH):
        with services.transaction() as session:
            for n in range(first, min(first + BATCH, keys.stop)):
                queue_message(
                    session,
                    services,
                    channel="telegram",
                    recipient=f"tg:{5_550_000_000 + n % CHATS}",
                    text=f"Bench message {n}: your repayment of KES 1,500 is due on 15 July.",
                    idempotency_key=f"bench:{n}",
                )
    return time.perf_counter() - started


def outbox_summary(services: Any) -> dict[str, Any]:
    from sqlalchemy import func, select

    from gateway.models import OutboxMessage

    with services.transaction() as session:
        rows = session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
        by_status = {str(status): int(count) for status, count in rows}
        first, last = session.execute(select(func.min(OutboxMessage.sent_at), func.max(OutboxMessage.sent_at))).one()
    return {"by_status": by_status, "first_sent": first, "last_sent": last}


def run(args: argparse.Namespace, mode: str, folder: Path) -> bool:
    database_url = common.fresh_database(DATABASE)
    redis_url = common.fresh_redis(REDIS_DB)
    settings = {"telegram_bot_token": common.TELEGRAM_TOKEN, "sms_per_second": SMS_PER_SECOND}
    services = common.bench_services(database_url, redis_url, **settings)
    with common.fake_telegram(args.seconds + 120, folder / "fake_telegram.log") as fake_url:
        enqueue_seconds = queue_messages(services, range(args.messages))
        queue_messages(services, range(min(args.duplicates, args.messages)))
        jobs_queued = services.queue.count
        env = common.server_env(database_url, redis_url, **settings)
        env[common.FAKE_TELEGRAM_ENV] = fake_url
        started = time.perf_counter()
        worker = common.start_python(
            f"import common; common.worker_main(simple={mode == 'simple'}, burst=True)", env, folder / "worker.log"
        )
        try:
            worker.wait(args.seconds)
        except subprocess.TimeoutExpired:  # the time cap: stop the worker, report what got through
            print(f"  worker still running after {args.seconds:.0f} s: stopping it")
        finally:
            common.stop(worker)
        worker_seconds = time.perf_counter() - started
        counts = common.fake_telegram_counts(fake_url)
    summary = outbox_summary(services)
    services.dispose()
    return report(args, mode, enqueue_seconds, jobs_queued, worker_seconds, summary, counts, folder)


def report(
    args: argparse.Namespace,
    mode: str,
    enqueue_seconds: float,
    jobs_queued: int,
    worker_seconds: float,
    summary: dict[str, Any],
    counts: dict[str, int],
    folder: Path,
) -> bool:
    sent = summary["by_status"].get("sent", 0)
    span = (summary["last_sent"] - summary["first_sent"]).total_seconds() if sent > 1 else float("nan")
    twice = sum(1 for value in counts.values() if value > 1)
    received = sum(counts.values())
    print(f"\n== one RQ worker ({mode}), {args.messages:,} messages, to a loopback fake Bot API ==")
    print(
        f"  enqueue: {args.messages:,} in {enqueue_seconds:.1f} s = {args.messages / enqueue_seconds:,.0f}/s "
        f"(queue_message in transactions of {BATCH}); {jobs_queued:,} jobs in the queue with "
        f"{min(args.duplicates, args.messages):,} keys queued twice"
    )
    print(
        f"  delivery: {sent:,} sent, {sent / span:,.0f} messages/s from first to last send; "
        f"worker life {worker_seconds:.1f} s = {sent / worker_seconds:,.0f}/s including start-up"
    )
    print(f"  outbox rows by status: {summary['by_status']}")
    print(f"  fake Bot API: {received:,} sendMessage calls, {len(counts):,} distinct texts, {twice} sent twice")
    ok = sent == args.messages and len(counts) == args.messages and received == args.messages and twice == 0
    print(f"  every message sent exactly once: {'OK' if ok else 'NO'}")
    if not ok:
        print(f"  worker log: {folder / 'worker.log'}")
        print((folder / "worker.log").read_text()[-2000:])
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--duplicates", type=int, default=1_000, help="keys queued a second time")
    parser.add_argument("--worker", nargs="+", default=["simple"], choices=["simple", "fork"])
    parser.add_argument("--seconds", type=float, default=900, help="time cap of each worker run")
    args = parser.parse_args()
    common.exit_on_sigterm()
    print(f"machine: {common.machine_note()}")
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for mode in args.worker:
            ok = run(args, mode, Path(folder)) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
