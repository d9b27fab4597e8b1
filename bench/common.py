"""Shared helpers for the load benchmarks: fresh databases, gunicorn and RQ worker processes, a fake Telegram Bot
API, and a bounded asyncio load driver that records per-hop latencies.

The benchmarks measure the service as it runs in production (gunicorn, PostgreSQL, Redis, an RQ worker), so these
helpers start real processes on 127.0.0.1 only. Every process installs `guard_loopback()`, which refuses any
connection to a non-loopback address: a benchmark can never reach a real provider. Every load loop is bounded both
in count (a finite list of sessions) and in time (a deadline), so nothing runs on by itself.

Also importable by gunicorn (`--pythonpath bench`): `ceiling_app()` is the bare Flask endpoint that returns a fixed
`CON` screen, and `guarded_app()` is the real application with the loopback guard and Telegram pointed at the fake.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The servers and workers run from the virtual environment of the Python running the benchmark (.venv, or one
# made on another interpreter to compare builds of CPython).
VENV_BIN = Path(sys.executable).parent
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_SERVER = "redis://127.0.0.1:6379"
USSD_PATH = "/webhooks/africastalking/ussd"
BENCH_SECRET_KEY = "bench-secret-key-not-for-production"
TELEGRAM_TOKEN = "123456:bench-token"
TELEGRAM_SECRET = "bench-webhook-secret"
FAKE_TELEGRAM_ENV = "BENCH_FAKE_TELEGRAM_URL"
SERVER_TIMES_ENV = "BENCH_SERVER_TIMES"  # a folder: each web worker writes its hops' times inside the app there
LOOPBACK = {"127.0.0.1", "::1", "localhost"}
CEILING_SCREEN = "CON Welcome to Demo MFI\n1 Poverty survey\n2 Balances\n3 Mini statement\n4 My progress\n5 Consent"


# --- safety ---------------------------------------------------------------------------------------------------


class NetworkGuardError(ConnectionRefusedError):
    """A benchmark process tried to connect somewhere other than 127.0.0.1."""


def guard_loopback() -> None:
    """Refuse every TCP connection to a non-loopback address in this process (Unix sockets are allowed)."""
    if getattr(socket.socket, "_bench_guarded", False):
        return
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex

    def check(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            raise NetworkGuardError(f"benchmark network guard: refusing to connect to {address[0]}")

    def connect(sock: socket.socket, address: Any) -> None:
        check(sock, address)
        original_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        check(sock, address)
        return original_connect_ex(sock, address)

    socket.socket.connect = connect  # type: ignore[method-assign]
    socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
    socket.socket._bench_guarded = True  # type: ignore[attr-defined]


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so the context managers stop the processes this benchmark started."""

    def handler(_signum: int, _frame: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, handler)


# --- databases ------------------------------------------------------------------------------------------------


def fresh_database(name: str) -> str:
    """Drop and re-create PostgreSQL database `name` (must start with ic_bench_), migrate it, return its URL."""
    if not name.startswith("ic_bench_"):
        raise ValueError("benchmark databases are named ic_bench_*")
    from sqlalchemy import create_engine, text

    import migrate
    from settings import Settings

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = f"{PG_SERVER}/{name}"
    migrate.upgrade(Settings(app_env="test", database_url=url, log_level="WARNING"))
    return url


def fresh_redis(number: int) -> str:
    """Empty Redis database `number` (8-10 are the benchmarks') and return its URL."""
    if number not in (8, 9, 10):
        raise ValueError("benchmarks use Redis databases 8, 9 and 10")
    import redis

    url = f"{REDIS_SERVER}/{number}"
    connection = redis.Redis.from_url(url)
    connection.flushdb()
    connection.close()
    return url


def server_env(database_url: str, redis_url: str, **settings: object) -> dict[str, str]:
    """The environment of a production-like process: APP_ENV=production plus `settings` (field=value)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "REDIS_"))}
    env.update(
        APP_ENV="production",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=BENCH_SECRET_KEY,
        LOG_LEVEL="WARNING",
        PYTHONPATH=f"{ROOT}{os.pathsep}{BENCH}",
        MALLOC_MMAP_THRESHOLD_="1048576",  # as the Procfile's web process runs
    )
    env.update({name.upper(): str(value) for name, value in settings.items()})
    return env


def bench_services(database_url: str, redis_url: str, **settings: Any) -> Any:
    """Services for the benchmark process itself (seeding, checks, in-process profiling)."""
    import bootstrap
    from settings import Settings

    return bootstrap.build(
        Settings(app_env="test", database_url=database_url, redis_url=redis_url, log_level="WARNING", **settings)
    )


def in_process_app(database: str, redis_db: int, **settings: Any) -> Any:
    """The real application in this process on fresh copies of `database` and Redis db `redis_db`, configured as
    in production (for timing hops through Flask's test client)."""
    from app import create_app
    from settings import Settings

    return create_app(
        Settings(
            app_env="production",
            database_url=fresh_database(database),
            redis_url=fresh_redis(redis_db),
            secret_key=BENCH_SECRET_KEY,
            log_level="WARNING",
            **settings,
        )
    )


# --- processes ------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def child_pids(pid: int) -> list[int]:
    try:
        return [int(part) for part in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def rss_mb(pid: int) -> float:
    """Resident memory of `pid` in MB, from /proc/<pid>/status (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class CpuUse:
    """CPU seconds each kind of process used over a stretch of time (`cpu_use`), and the stretch's length."""

    seconds: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0

    def line(self, per_second: float) -> str:
        """ "web 127%, PostgreSQL 29%, ... (of 200%); per hop: web 0.97 ms, ..." for a run of `per_second` hops/s."""
        busy = sorted(((kind, s) for kind, s in self.seconds.items() if kind != "idle"), key=lambda item: -item[1])
        shares = ", ".join(f"{kind} {s / self.elapsed:.0%}" for kind, s in [*busy, ("idle", self.seconds["idle"])])
        per_hop = ", ".join(f"{kind} {s / self.elapsed / per_second * 1000:.2f} ms" for kind, s in busy)
        return f"{shares} (of {os.cpu_count() or 1}00%); per hop: {per_hop}"


@contextlib.contextmanager
def cpu_use() -> Iterator[CpuUse]:
    """The machine's CPU by kind of process (web workers, PostgreSQL, Redis, the load driver, the rest, idle) while
    the block runs, read from /proc: where a hop's time goes outside the app, which no in-process profile shows."""
    use = CpuUse()
    before, idle_before, started = _cpu_by_process(), _idle_seconds(), time.perf_counter()
    yield use
    after, idle_after, use.elapsed = _cpu_by_process(), _idle_seconds(), time.perf_counter() - started
    for pid, (kind, seconds) in after.items():
        use.seconds[kind] = use.seconds.get(kind, 0.0) + seconds - before.get(pid, (kind, 0.0))[1]
    use.seconds["idle"] = idle_after - idle_before


def _cpu_by_process() -> dict[int, tuple[str, float]]:
    """{pid: (kind, user + system CPU seconds so far)} of every process this container can see."""
    processes = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        name, fields = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        if int(entry.name) == os.getpid():  # with the children it has waited for: wrk has exited by the end
            seconds += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
        processes[int(entry.name)] = (_process_kind(int(entry.name), name, command), seconds)
    return processes


def _process_kind(pid: int, name: str, command: bytes) -> str:
    if name.startswith("postgres"):
        return "PostgreSQL"
    if name.startswith("redis"):
        return "Redis"
    if name == "wrk" or pid == os.getpid():
        return "driver"
    return "web" if b"gunicorn" in command else "other"


def _idle_seconds() -> float:
    """Idle CPU seconds of the whole machine so far (all cores; /proc/stat's fourth field)."""
    return int(Path("/proc/stat").read_text().split(maxsplit=5)[4]) / CLOCK_TICKS


def wait_until(check: Callable[[], bool], *, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {seconds:.0f} s")


def _answers(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class Gunicorn:
    """A gunicorn master on 127.0.0.1 serving `target` (e.g. "common:guarded_app()"); a context manager."""

    target: str
    env: dict[str, str]
    workers: int = 2
    worker_class: str = "sync"
    threads: int = 1
    log_path: Path = field(default_factory=lambda: Path("/tmp/ic_bench_gunicorn.log"))
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gunicorn:
        command = [
            str(VENV_BIN / "gunicorn"),
            f"--workers={self.workers}",
            f"--worker-class={self.worker_class}",
            f"--threads={self.threads}",
            f"--bind=127.0.0.1:{self.port}",
            f"--chdir={ROOT}",
            "--backlog=2048",
            "--timeout=30",
            "--graceful-timeout=10",
            "--log-level=warning",
            self.target,
        ]
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=log)
        wait_until(
            lambda: _answers(self.url + "/healthz") and len(self.worker_pids()) == self.workers,
            seconds=60,
            what=f"gunicorn {self.target}",
        )
        return self

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid) if self.process else []

    def __exit__(self, *exc_info: object) -> None:
        stop(self.process)


def stop(process: subprocess.Popen[bytes] | None, seconds: float = 20) -> None:
    """SIGTERM the process we started, wait, then SIGKILL it if it has not gone."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def start_python(code: str, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Run `code` in a new interpreter of the project's virtualenv with bench/ importable."""
    log = log_path.open("ab")
    return subprocess.Popen([str(VENV_BIN / "python"), "-c", code], env=env, stdout=log, stderr=log, cwd=ROOT)


# --- the WSGI apps gunicorn serves ------------------------------------------------------------------------------


def ceiling_app() -> Any:
    """The bare ceiling: a Flask app whose USSD route returns a fixed CON screen (no database, no Redis)."""
    from flask import Flask, Response

    app = Flask("ceiling")

    @app.post(USSD_PATH)
    def ussd() -> Response:
        return Response(CEILING_SCREEN, content_type="text/plain; charset=utf-8")

    @app.get("/healthz")
    def healthz() -> Response:
        return Response("ok", content_type="text/plain")

    return app


def guarded_app() -> Any:
    """The real application (`app.create_app()` from the environment) that can only reach 127.0.0.1."""
    guard_loopback()
    from app import create_app

    app = create_app()
    use_fake_telegram(app.extensions["services"])
    folder = os.environ.get(SERVER_TIMES_ENV)
    if folder:
        app.wsgi_app = _timing_hops(app.wsgi_app, Path(folder) / f"{os.getpid()}.txt")  # type: ignore[method-assign]
    return app


def _timing_hops(wsgi_app: Any, path: Path) -> Any:
    """`wsgi_app` writing a line per USSD hop: when it reached the app (perf_counter, which is the machine's
    monotonic clock, as the driver's is), the `*`-separated segments of its `text`, and its wall and CPU
    milliseconds inside the app. Set against the driver's latency this splits a hop's time into waiting for the
    server and running in it."""
    import io
    import threading

    out = path.open("a", encoding="utf-8", buffering=1)  # a line at a time: a worker stopped by SIGTERM loses none
    lock = threading.Lock()

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") != USSD_PATH:
            return wsgi_app(environ, start_response)  # the readiness checks
        started, cpu_started = time.perf_counter(), time.thread_time()
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        environ["wsgi.input"] = io.BytesIO(body)
        response = wsgi_app(environ, start_response)
        wall_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.thread_time() - cpu_started) * 1000
        # The driver sends `text` last, with each `*` as %2A: its segments are counted without parsing the form,
        # which cost this measurement a few percent of the hop it measures.
        text = body.rpartition(b"text=")[2]
        segments = text.count(b"%2A") + 1 if text else 0
        with lock:
            out.write(f"{started:.6f} {segments} {wall_ms:.3f} {cpu_ms:.3f}\n")
        return response

    return timed


def read_server_times(folder: Path, window: tuple[float, float] | None) -> list[tuple[int, float, float]]:
    """(segments, wall ms, CPU ms) of the hops `_timing_hops` wrote in `folder`, those that arrived in `window`."""
    rows = []
    for path in folder.glob("*.txt"):
        for line in path.read_text(encoding="utf-8").splitlines():
            started, segments, wall_ms, cpu_ms = line.split()
            if window is None or window[0] <= float(started) < window[1]:
                rows.append((int(segments), float(wall_ms), float(cpu_ms)))
    return rows


def use_fake_telegram(services: Any) -> None:
    """Point the Telegram channel at the fake Bot API in $BENCH_FAKE_TELEGRAM_URL (if set)."""
    from dataclasses import replace

    import bootstrap
    from gateway.channels import build_channels

    fake = os.environ.get(FAKE_TELEGRAM_ENV, "")
    if fake:
        config = replace(bootstrap.channel_config(services.settings), telegram_base_url=fake)
        services._channels = build_channels(config)


def worker_main(simple: bool = True, burst: bool = False) -> None:
    """An RQ worker like `impact-connect worker`, guarded and with Telegram pointed at the fake.

    `simple=True` runs jobs in the worker process (SimpleWorker); False forks a work horse per job, as the
    production `HerokuWorker` does."""
    guard_loopback()
    from rq import SimpleWorker
    from rq.worker import HerokuWorker

    import bootstrap
    from logs import configure_logging
    from settings import Settings

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    services = bootstrap.build(settings)
    use_fake_telegram(services)
    worker_class = SimpleWorker if simple else HerokuWorker
    worker = worker_class([services.queue], connection=services.redis)
    worker.work(burst=burst, with_scheduler=False, logging_level=settings.log_level)


# --- the fake Telegram Bot API ----------------------------------------------------------------------------------


def fake_telegram_main(port: int, seconds: float) -> None:
    """Serve a minimal Bot API on 127.0.0.1:`port` for at most `seconds`: sendMessage and answerCallbackQuery
    succeed; GET /stats returns how many times each (chat id, text) was sent."""
    from aiohttp import web

    counts: dict[str, int] = {}

    async def method(request: web.Request) -> web.Response:
        name = request.match_info["method"]
        fields = await _telegram_fields(request)
        if name == "sendMessage":
            key = f"{fields.get('chat_id')}|{fields.get('text')}"
            counts[key] = counts.get(key, 0) + 1
            chat = {"id": int(str(fields.get("chat_id", "0"))), "type": "private"}
            result = {
                "message_id": sum(counts.values()),
                "date": int(time.time()),
                "chat": chat,
                "text": fields.get("text", ""),
            }
            return web.json_response({"ok": True, "result": result})
        return web.json_response({"ok": True, "result": True})

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counts)

    async def health(_request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", method)
        app.router.add_get("/stats", stats)
        app.router.add_get("/healthz", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        await asyncio.sleep(seconds)
        await runner.cleanup()

    asyncio.run(serve())


async def _telegram_fields(request: Any) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    return {key: value for key, value in (await request.post()).items()}


@contextlib.contextmanager
def fake_telegram(seconds: float, log_path: Path) -> Iterator[str]:
    """Run the fake Bot API in a subprocess; yields the base URL to give the Telegram channel."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{BENCH}")
    process = start_python(f"import common; common.fake_telegram_main({port}, {seconds})", env, log_path)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/healthz"), seconds=30, what="fake Telegram")
        yield f"http://127.0.0.1:{port}/bot"
    finally:
        stop(process, 5)


def fake_telegram_counts(base_url: str) -> dict[str, int]:
    import httpx

    return dict(httpx.get(base_url.removesuffix("/bot") + "/stats", timeout=10).json())


# --- the load driver --------------------------------------------------------------------------------------------


class SessionFailed(Exception):
    """A session got an unexpected answer; it stops and the error is counted."""


@dataclass
class Recorder:
    """Latencies (seconds) per hop label, and errors, for one load run."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    sent_at: dict[str, list[float]] = field(default_factory=dict)  # perf_counter when each request left, per label
    errors: list[str] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    completed_sessions: int = 0
    # From when the last lane started to when the first ran out of sessions: every lane busy (see `drive`).
    steady: tuple[float, float] | None = None

    def record(self, label: str, seconds: float, sent_at: float = 0.0) -> None:
        self.latencies.setdefault(label, []).append(seconds)
        self.sent_at.setdefault(label, []).append(sent_at)

    def steady_window(self) -> Recorder:
        """The requests sent while every lane was busy, as a recorder of their own (throughput over the window)."""
        if self.steady is None:
            return self
        start, end = self.steady
        window = Recorder(errors=self.errors, started=start, finished=end, completed_sessions=self.completed_sessions)
        for label, values in self.latencies.items():
            for seconds, sent in zip(values, self.sent_at[label], strict=True):
                if start <= sent < end:
                    window.record(label, seconds, sent)
        return window

    def fail(self, message: str) -> None:
        self.errors.append(message)

    @property
    def elapsed(self) -> float:
        return max(self.finished - self.started, 1e-9)

    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]

    def summary(self, label: str | None = None) -> dict[str, float]:
        values = self.latencies.get(label, []) if label else self.all_latencies()
        return {
            "requests": len(values),
            "per_second": len(values) / self.elapsed,
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "max_ms": max(values, default=math.nan) * 1000,
        }

    def line(self, title: str, label: str | None = None) -> str:
        s = self.summary(label)
        return (
            f"{title}: {s['requests']:,} requests in {self.elapsed:.1f} s = {s['per_second']:,.0f}/s, "
            f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.0f} ms, errors {len(self.errors)}"
        )


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (nan for no values)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(math.ceil(pct / 100 * len(ordered)), 1)
    return ordered[rank - 1]


async def timed_post(
    http: Any,
    recorder: Recorder,
    label: str,
    path: str,
    *,
    data: Any = None,
    headers: dict[str, str] | None = None,
    expect: int = 200,
) -> str:
    """POST with aiohttp; records the latency under `label`; an exception or another status is a counted error."""
    started = time.perf_counter()
    try:
        async with http.post(path, data=data, headers=headers) as response:
            body = await response.text()
    except Exception as exc:  # noqa: BLE001 - any transport failure is one counted error
        recorder.fail(f"{label}: {type(exc).__name__}")
        raise SessionFailed(label) from exc
    recorder.record(label, time.perf_counter() - started, started)
    if response.status != expect:
        recorder.fail(f"{label}: HTTP {response.status} {body[:80]!r}")
        raise SessionFailed(label)
    return str(body)


async def timed_get(http: Any, recorder: Recorder, label: str, path: str, headers: dict[str, str]) -> Any:
    started = time.perf_counter()
    try:
        async with http.get(path, headers=headers) as response:
            body = await response.text()
    except Exception as exc:  # noqa: BLE001
        recorder.fail(f"{label}: {type(exc).__name__}")
        raise SessionFailed(label) from exc
    recorder.record(label, time.perf_counter() - started)
    if response.status != 200:
        recorder.fail(f"{label}: HTTP {response.status} {body[:80]!r}")
        raise SessionFailed(label)
    return json.loads(body)


_PACING = random.Random(20261123)  # the same pauses on every run


class UssdPhone:
    """A feature phone on Africa's Talking USSD: keeps the cumulative `text`; checks every screen.

    With `think` > 0 the phone pauses before dialling and before each reply like a person reading the screen: a
    random pause between half and one and a half times `think` (mean `think`), so that 50 lanes do not stay in
    lockstep and hit the server with 50 requests at the same instant after every fixed pause."""

    def __init__(self, http: Any, recorder: Recorder, number: str, session_id: str, think: float = 0.0) -> None:
        self.http = http
        self.recorder = recorder
        self.number = number
        self.session_id = session_id
        self.think = think
        self.history: list[str] = []

    async def dial(self, label: str = "dial") -> str:
        await self._pause()
        self.history = []
        return await self._post("", label)

    async def send(self, text: str, label: str) -> str:
        await self._pause()
        self.history.append(text)
        return await self._post("*".join(self.history), label)

    async def _pause(self) -> None:
        if self.think:
            await asyncio.sleep(self.think * _PACING.uniform(0.5, 1.5))

    async def _post(self, text: str, label: str) -> str:
        form = {
            "sessionId": self.session_id,
            "serviceCode": "*384*123#",
            "phoneNumber": self.number,
            "networkCode": "63902",
            "text": text,
        }
        body = await timed_post(self.http, self.recorder, label, USSD_PATH, data=form)
        if not body.startswith(("CON ", "END ")):
            self.recorder.fail(f"{label}: not a USSD screen {body[:60]!r}")
            raise SessionFailed(label)
        return body

    def expect(self, screen: str, condition: bool, label: str) -> None:
        if not condition:
            self.recorder.fail(f"{label}: unexpected screen {screen[:70]!r}")
            raise SessionFailed(label)


Job = Callable[[Any, Recorder], Awaitable[None]]


async def drive(
    base_url: str, jobs: Iterable[Job], *, concurrency: int, seconds: float, stagger: float = 0.0
) -> Recorder:
    """Run `jobs` (each one session) on `concurrency` lanes until they run out or `seconds` pass.

    With `stagger` > 0 lane k starts k / concurrency * stagger seconds after the first, and `Recorder.steady` is
    the window in which every lane was busy. Lanes that all start at once stay in lockstep when nobody pauses (the
    server's queue keeps their order): all 50 dial together, then all open the survey, then all submit, so each
    hop waits behind 49 hops of its own kind, which no real set of phones does.

    aiohttp rather than httpx: on this machine httpx's AsyncClient with 50 connections became the bottleneck
    (190 req/s against the bare ceiling, and read time-outs on gthread keep-alive connections), aiohttp did 2,400."""
    import aiohttp

    recorder = Recorder()
    iterator = iter(jobs)
    deadline = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(base_url=base_url, connector=connector, timeout=timeout) as http:
        lane_started: list[float] = []
        lane_idle: list[float] = []

        async def lane(index: int) -> None:
            await asyncio.sleep(index / concurrency * stagger)
            lane_started.append(time.perf_counter())
            for job in iterator:
                if time.monotonic() > deadline:
                    break
                try:
                    await job(http, recorder)
                    recorder.completed_sessions += 1
                except SessionFailed:
                    pass
            lane_idle.append(time.perf_counter())

        recorder.started = time.perf_counter()
        lanes = (lane(index) for index in range(concurrency))
        await asyncio.wait_for(asyncio.gather(*lanes), timeout=seconds + stagger + 60)
        recorder.finished = time.perf_counter()
        if stagger > 0 and max(lane_started) < min(lane_idle):
            recorder.steady = (max(lane_started), min(lane_idle))
    return recorder


def run_wrk(
    url: str,
    *,
    connections: int,
    seconds: float,
    script: Path | None = None,
    threads: int = 2,
    script_args: Sequence[str] = (),
) -> dict[str, float]:
    """Load from wrk (if installed): requests/s, p50/p99 latency in ms, socket errors and non-2xx answers, and the
    `name=value` counts a script's done() prints on a line that starts "lanes:" (see ussd_survey.lua)."""
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    result = {"per_second": math.nan, "p50_ms": math.nan, "p99_ms": math.nan, "errors": 0.0}
    if shutil.which("wrk") is None:
        return result
    command += [url, *(["--", *script_args] if script_args else [])]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30).stdout
    for line in output.splitlines():
        parts = line.split()
        if line.startswith("Requests/sec:"):
            result["per_second"] = float(parts[1])
        elif len(parts) == 2 and parts[0] in ("50%", "99%"):
            result["p50_ms" if parts[0] == "50%" else "p99_ms"] = _wrk_ms(parts[1])
        elif line.strip().startswith(("Socket errors:", "Non-2xx")):
            result["errors"] += sum(int(n) for n in re.findall(r"\d+", line.split(":", 1)[1]))
        elif line.startswith("lanes:"):
            result.update({name: float(value) for name, value in (part.split("=") for part in parts[1:])})
    return result


def _wrk_ms(value: str) -> float:
    for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if value.endswith(suffix):
            return float(value.removesuffix(suffix)) * factor
    return float(value)


def machine_note() -> str:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{os.cpu_count()} cores, load average {load}"


def dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
