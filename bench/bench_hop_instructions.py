"""Benchmark: CPU instructions per USSD survey hop, counted by valgrind's callgrind, so the figure does not move with
the machine.

Run: .venv/bin/python bench/bench_hop_instructions.py [--surveys 10]

Why: on this shared 2-core machine the same load run gives up to 2x different hops/s from one minute to the next, so
a 10% change to a hop cannot be seen in `bench_ussd.py`. Callgrind counts the instructions a process executes,
which is the same run after run whatever else the machine does. The script starts itself under
`valgrind --tool=callgrind --instr-atstart=no` (the setup runs uninstrumented), then runs `--surveys` KEN-2024
surveys in lockstep through the real application's WSGI callable on PostgreSQL + Redis (all dials, then all
"1 = survey", then each answer, then all submits), switching counting on around each kind of hop with
`callgrind_control`. Then it counts the parts a hop is made of, each alone: Flask's own work for a trivial route of
this app, the live session's two Redis round trips, an empty unit of work, and the draft upsert.

Counted in this process only: PostgreSQL's and Redis's own work, the HTTP server (gunicorn) and the kernel are not
in these figures. Needs valgrind (on the machine) and PostgreSQL + Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from bench_ussd import QUESTIONS, seed_survey_clients, survey_forms  # noqa: E402

DATABASE = "ic_bench_ussd"
REDIS_DB = 8
KINDS = ["dial", "open survey"] + ["answer"] * QUESTIONS + ["submit"]
PART_REPEATS = 200
COUNTED = re.compile(r"^totals:\s*(\d+)", re.MULTILINE)


def wsgi_post(app: Any, path: str, form: dict[str, str]) -> bytes:
    """One POST through the WSGI callable, with the environ a WSGI server builds (no test client on top)."""
    body = urlencode(form).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    reply = b"".join(app(environ, lambda *_: None))
    if not reply.startswith((b"CON ", b"END ")):
        raise RuntimeError(f"unexpected screen: {reply[:80]!r}")
    return reply


class Counter:
    """Switches callgrind's counting on and off from inside the process and reads each stretch's count."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pid = str(os.getpid())

    def _control(self, *arguments: str) -> None:
        subprocess.run(["callgrind_control", *arguments, self.pid], stdout=subprocess.DEVNULL, check=True)
        time.sleep(0.2)  # the command is picked up asynchronously; nothing is counted while this process sleeps

    def count(self, work: Callable[[], None]) -> int:
        """Instructions executed by `work()` in this process."""
        self._control("--zero")
        self._control("--instr=on")
        work()
        self._control("--instr=off")
        before = set(self.folder.glob("callgrind.out*"))
        self._control("--dump")
        dumps = sorted(set(self.folder.glob("callgrind.out*")) - before, key=lambda path: path.stat().st_mtime)
        return int(COUNTED.search(dumps[-1].read_text(errors="replace")).group(1))  # type: ignore[union-attr]


def count_hops(app: Any, counter: Counter, surveys: int) -> dict[str, float]:
    services = app.extensions["services"]
    phones = seed_survey_clients(services, surveys + 2)
    for n, phone in enumerate(phones[:2]):  # warm up: imports, the scorecard, both pools, prepared statements
        for form in survey_forms(phone, f"warm_{n}"):
            wsgi_post(app, common.USSD_PATH, form)
    sessions = [survey_forms(phone, f"count_{n}") for n, phone in enumerate(phones[2:])]
    totals: dict[str, int] = {}
    for hop, kind in enumerate(KINDS):
        totals[kind] = totals.get(kind, 0) + counter.count(
            lambda hop=hop: [wsgi_post(app, common.USSD_PATH, forms[hop]) for forms in sessions]  # type: ignore[misc]
        )
    per_hop = {kind: totals[kind] / (surveys * KINDS.count(kind)) for kind in totals}
    per_hop["mean of a survey's hops"] = sum(totals.values()) / (surveys * len(KINDS))
    return per_hop


def add_trivial_route(app: Any) -> None:
    """A route of this app that does nothing: what Flask and werkzeug cost a hop on their own."""
    from flask import Response

    app.add_url_rule(
        "/webhooks/bench-trivial",
        "bench_trivial",
        lambda: Response(common.CEILING_SCREEN, content_type="text/plain; charset=utf-8"),
        methods=["POST"],
    )


def count_parts(app: Any, counter: Counter) -> dict[str, float]:
    """What a hop is made of, each part alone, per call."""
    from sqlalchemy import select

    from accounts.models import Client
    from conversations.repository import DraftRepository, LiveSession, LiveSessionStore

    services = app.extensions["services"]
    form = survey_forms("+254700199999", "ATUid_parts")[3]
    with services.transaction() as session:
        client_id = session.scalar(select(Client.id).limit(1))
    live = LiveSession(state={"node": "survey.question", "answers": {"1": 1, "2": 2}}, consumed=5)

    def flask_route() -> None:
        wsgi_post(app, "/webhooks/bench-trivial", form)

    def redis_round_trips() -> None:
        store = LiveSessionStore(services.redis, 300)
        held = store.acquire("at-ussd:ATUid_parts", rate_key="rate:sender:+254700199999:0")
        held.keep(live)
        store.release(held)

    def empty_unit_of_work() -> None:
        with services.lazy_transaction():
            pass

    def draft_upsert() -> None:
        with services.lazy_transaction() as session:
            DraftRepository(session, autocommit=services.autocommit_engine).save_answer(
                client_id=client_id,
                mode="self",
                scorecard_id="KEN-2024",
                question_index=1,
                option_position=1,
                officer_id=None,
                now=datetime.now(UTC),
                ttl_days=7,
            )

    parts = {
        "Flask and werkzeug, a trivial route of this app": flask_route,
        "live session: acquire + release (2 Redis round trips)": redis_round_trips,
        "an empty unit of work (Session made and closed)": empty_unit_of_work,
        "the draft upsert, with its unit of work": draft_upsert,
    }
    counts = {}
    for name, part in parts.items():
        for _ in range(20):
            part()
        counts[name] = counter.count(lambda part=part: [part() for _ in range(PART_REPEATS)]) / PART_REPEATS
    return counts


def measure(surveys: int) -> None:
    app = common.in_process_app(DATABASE, REDIS_DB)
    add_trivial_route(app)
    counter = Counter(Path.cwd())
    hops = count_hops(app, counter, surveys)
    parts = count_parts(app, counter)
    app.extensions["services"].dispose()
    print(f"== instructions per USSD survey hop ({surveys} KEN-2024 surveys in-process, PostgreSQL + Redis) ==")
    for kind, count in hops.items():
        print(f"  {kind:<24} {count / 1e6:6.2f} M")
    print("== the parts, each alone ==")
    for name, count in parts.items():
        print(f"  {name:<56} {count / 1e6:6.2f} M")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--surveys", type=int, default=10)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # set when run under valgrind
    args = parser.parse_args()
    if args.measure:
        measure(args.surveys)
        return
    print(common.machine_note())
    with tempfile.TemporaryDirectory(prefix="ic_callgrind_") as folder:
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={folder}/callgrind.out.%p",
            sys.executable,
            str(Path(__file__).resolve()),
            "--measure",
            f"--surveys={args.surveys}",
        ]
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
    print(result.stdout, end="")
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])


if __name__ == "__main__":
    main()
