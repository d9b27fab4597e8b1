"""Benchmark: the USSD hop under load, against the bare-Flask ceiling, then a profile of one survey's hops.

Run: .venv/bin/python bench/bench_ussd.py [--sessions 400] [--concurrency 50] [--worker-class sync gthread]
     [--workers 2] [--profile-sessions 20] [--think 0] [--stagger 1] [--driver python|wrk] [--wrk-seconds 10]

For each gunicorn worker class asked for (2 workers, 127.0.0.1, APP_ENV=production on PostgreSQL + Redis), 50
concurrent simulated phones each complete a KEN-2024 PPI survey with a distinct client (13 hops: dial, 1 = survey,
10 answers, submit) with no think time (`--think S`: a random pause of S seconds on average before each hop, as a
person reads and types); the same driver then runs the same sessions against a bare Flask app that
returns a fixed CON screen (the ceiling), and wrk measures that ceiling's raw req/s. The lanes start one by one
over `--stagger` seconds and the figures cover the window in which all of them are busy: lanes that start at once
stay in lockstep (see `common.drive`). Afterwards every survey must be
in PostgreSQL (SurveyResponse = completed sessions, SurveyAnswer = 10 per survey, no draft left). Last, the hops of
`--profile-sessions` surveys run in-process through Flask's test client on the same PostgreSQL and Redis under
cProfile, counting SQL statements and Redis round trips per hop, to show where the time goes.

`--driver wrk` drives the same load from wrk instead (`ussd_survey.lua`: 50 lanes, one connection each, every lane
completing surveys one after another for `--wrk-seconds`), app and ceiling alike. The Python driver spends about as
much CPU per request as the bare ceiling does, on the same two cores; wrk a fraction of it, so its figures are
nearer what the server alone can do. Its latency covers every kind of hop together, and the durability check allows
for the hops wrk cut off when it stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import math
import pstats
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from common import Gunicorn, Recorder, UssdPhone  # noqa: E402

BANDS = "0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor"
DATABASE = "ic_bench_ussd"
REDIS_DB = 8
QUESTIONS = 10
HOPS_PER_SURVEY = QUESTIONS + 3
# The ceiling answers a session ~10x faster than the app: it gets at least this many, so that its lanes are all busy
# for seconds after the stagger, as the app's are.
CEILING_SESSIONS = 3000
PHONE_BASE = 254_700_100_000
WRK_SCRIPT = Path(__file__).resolve().parent / "ussd_survey.lua"
WRK_MODES = {"app": "survey", "ceiling": "ceiling"}
# wrk runs for a time, not a number of surveys: enough clients that no lane takes a second survey with one of them
# (about 1,100 surveys in 10 s with 3 sync workers on this machine).
WRK_MIN_PHONES = 2500
ISSUE_CEILING = 5900  # the bare endpoint "with wrk and 2 gunicorn workers on this 2-core machine", in issue #4


def seed_survey_clients(services: Any, count: int, *, first: int = 0) -> list[str]:
    """PPI settings (KEN-2024, bands shown to the client) and `count` clients with their own phones."""
    from sqlalchemy import select

    from surveys.models import PpiSettings
    from tests.factories import configure_ppi, make_client, make_office

    phones = [f"+{PHONE_BASE + first + n}" for n in range(count)]
    with services.transaction() as session:
        if session.scalars(select(PpiSettings)).first() is None:
            configure_ppi(session, bands=BANDS, show_band_to_client=True)
        office = make_office(session, level="branch")
        for phone in phones:
            make_client(session, phones=[phone], office=office, language="en")
    return phones


def survey_job(number: str, session_id: str, think: float = 0.0) -> common.Job:
    """One phone: dial, choose the survey, answer 1 to each of the 10 questions, submit; checks each screen."""

    async def job(http: Any, recorder: Recorder) -> None:
        phone = UssdPhone(http, recorder, number, session_id, think=think)
        menu = await phone.dial()
        phone.expect(menu, menu.startswith("CON ") and "1" in menu, "dial")
        screen = await phone.send("1", "open survey")
        for question in range(QUESTIONS):
            phone.expect(screen, screen.startswith(f"CON {question + 1}/{QUESTIONS}"), "answer")
            screen = await phone.send("1", "answer")
        phone.expect(screen, screen.startswith("CON "), "review")
        done = await phone.send("1", "submit")
        phone.expect(done, done.startswith("END "), "submit")

    return job


def ceiling_job(number: str, session_id: str, think: float = 0.0) -> common.Job:
    """The same 13 posts against the ceiling app (which always answers the same CON screen)."""

    async def job(http: Any, recorder: Recorder) -> None:
        phone = UssdPhone(http, recorder, number, session_id, think=think)
        await phone.dial()
        for _ in range(HOPS_PER_SURVEY - 1):
            await phone.send("1", "answer")

    return job


def write_wrk_script(folder: Path) -> Path:
    script = folder / "ussd_post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        'wrk.body = "sessionId=ATUid_wrk&serviceCode=%2A384%2A123%23&phoneNumber=%2B254700000001'
        '&networkCode=63902&text=1"\n',
        encoding="utf-8",
    )
    return script


def durable_counts(services: Any) -> dict[str, int]:
    from sqlalchemy import func, select

    from conversations.models import ConversationDraft
    from surveys.models import SurveyAnswer, SurveyResponse

    with services.transaction() as session:
        return {
            name: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for name, model in (("surveys", SurveyResponse), ("answers", SurveyAnswer), ("drafts", ConversationDraft))
        }


@dataclass
class Setup:
    """A fresh database and Redis for one run, and the environment and options of its gunicorn."""

    services: Any
    env: dict[str, str]
    server_times: Path
    threads: int
    server_options: dict[str, Any]


def fresh_setup(args: argparse.Namespace, worker_class: str, folder: Path, name: str) -> Setup:
    database_url = common.fresh_database(DATABASE)
    redis_url = common.fresh_redis(REDIS_DB)
    env = common.server_env(database_url, redis_url)
    server_times = folder / name
    server_times.mkdir()
    env[common.SERVER_TIMES_ENV] = str(server_times)
    threads = args.threads if worker_class == "gthread" else 1
    options = {"worker_class": worker_class, "threads": threads, "workers": args.workers}
    return Setup(common.bench_services(database_url, redis_url), env, server_times, threads, options)


def run_class(args: argparse.Namespace, worker_class: str, folder: Path) -> dict[str, Any]:
    setup = fresh_setup(args, worker_class, folder, f"server-times-{worker_class}")
    services, env, server_options = setup.services, setup.env, setup.server_options
    phones = seed_survey_clients(services, args.sessions)
    sessions = [survey_job(phone, f"ATUid_bench_{n}", args.think) for n, phone in enumerate(phones)]
    ceiling_phones = (phones[n % len(phones)] for n in range(max(len(phones), CEILING_SESSIONS)))
    ceiling_sessions = [ceiling_job(phone, f"ATUid_ceiling_{n}", args.think) for n, phone in enumerate(ceiling_phones)]
    with Gunicorn("common:guarded_app()", env, **server_options) as server, common.cpu_use() as app_cpu:
        app_run = drive_lanes(args, server.url, sessions)
    with Gunicorn("common:ceiling_app()", env, **server_options) as ceiling:
        with common.cpu_use() as ceiling_cpu:
            ceiling_run = drive_lanes(args, ceiling.url, ceiling_sessions)
        wrk = common.run_wrk(
            ceiling.url + common.USSD_PATH, connections=args.concurrency, seconds=10, script=write_wrk_script(folder)
        )
    counts = durable_counts(services)
    in_app = common.read_server_times(setup.server_times, app_run.steady)
    services.dispose()
    return {
        "class": worker_class,
        "threads": setup.threads,
        "workers": args.workers,
        "app": app_run,
        "ceiling": ceiling_run,
        "wrk": wrk,
        "counts": counts,
        "in_app": in_app,
        "cpu": {"app": app_cpu, "ceiling": ceiling_cpu},
    }


def run_class_wrk(args: argparse.Namespace, worker_class: str, folder: Path) -> dict[str, Any]:
    """The same load driven by wrk (`ussd_survey.lua`), app and ceiling alike: one connection per lane."""
    setup = fresh_setup(args, worker_class, folder, f"server-times-wrk-{worker_class}")
    services = setup.services
    phones_per_lane = math.ceil(max(args.sessions, WRK_MIN_PHONES) / args.concurrency)
    seed_survey_clients(services, phones_per_lane * args.concurrency)
    runs, cpu = {}, {}
    for name, target in (("app", "common:guarded_app()"), ("ceiling", "common:ceiling_app()")):
        lanes = [str(PHONE_BASE), str(args.concurrency), str(phones_per_lane), str(QUESTIONS), WRK_MODES[name]]
        with Gunicorn(target, setup.env, **setup.server_options) as server, common.cpu_use() as cpu[name]:
            runs[name] = common.run_wrk(
                server.url + common.USSD_PATH,
                connections=args.concurrency,
                threads=args.concurrency,
                seconds=args.wrk_seconds,
                script=WRK_SCRIPT,
                script_args=lanes,
            )
    counts = durable_counts(services)
    services.dispose()
    in_app = common.read_server_times(setup.server_times, None)
    return {
        "class": worker_class,
        "threads": setup.threads,
        "workers": args.workers,
        **runs,
        "counts": counts,
        "in_app": in_app,
        "cpu": cpu,
    }


def drive_lanes(args: argparse.Namespace, url: str, sessions: list[common.Job]) -> Recorder:
    return asyncio.run(
        common.drive(url, sessions, concurrency=args.concurrency, seconds=args.seconds, stagger=args.stagger)
    )


def _servers(result: dict[str, Any]) -> str:
    """ "gunicorn 3 workers, sync" or "gunicorn 2 workers, gthread x4 threads"."""
    threads = f" x{result['threads']} threads" if result["class"] == "gthread" else ""
    return f"gunicorn {result['workers']} workers, {result['class']}{threads}"


def report_class(result: dict[str, Any]) -> bool:
    app_run: Recorder = result["app"].steady_window()
    ceiling_run: Recorder = result["ceiling"].steady_window()
    wrk = result["wrk"]
    counts = result["counts"]
    completed = app_run.completed_sessions
    print(f"\n== {_servers(result)} ==")
    if result["app"].steady is None or result["ceiling"].steady is None:
        print("  no steady window (lanes started at once, or too few sessions for the stagger): whole runs")
    else:
        print(
            f"  steady window (every lane busy): {app_run.elapsed:.1f} s of the app's run, "
            f"{ceiling_run.elapsed:.1f} s of the ceiling's"
        )
    print(app_run.line("  USSD survey hops"))
    print(ceiling_run.line("  ceiling, same driver"))
    print(f"  ceiling, wrk: {wrk['per_second']:,.0f} req/s, p50 {wrk['p50_ms']:.1f} ms, p99 {wrk['p99_ms']:.1f} ms")
    in_app = _in_app_by_hop(result["in_app"])
    print("    (latency at the driver; then the hop's time inside the app, p50: the rest is waiting for the server)")
    for hop in ("dial", "open survey", "answer", "submit"):
        s = app_run.summary(hop)
        wall, cpu = in_app.get(hop, (math.nan, math.nan))
        print(
            f"    {hop:<12} p50 {s['p50_ms']:6.1f} ms  p99 {s['p99_ms']:6.1f} ms  ({s['requests']:,} hops);"
            f"  in the app {wall:4.1f} ms, {cpu:4.1f} ms of CPU"
        )
    print_cpu(result["cpu"], result["app"].summary()["per_second"], result["ceiling"].summary()["per_second"])
    ratio_driver = app_run.summary()["per_second"] / ceiling_run.summary()["per_second"]
    ratio_wrk = app_run.summary()["per_second"] / wrk["per_second"]
    durable = counts["surveys"] == completed and counts["answers"] == QUESTIONS * completed and counts["drafts"] == 0
    print(f"  throughput vs ceiling: {ratio_driver:.0%} of the same driver's, {ratio_wrk:.0%} of wrk's (target 25%)")
    print(f"  p99 {app_run.summary()['p99_ms']:.0f} ms (target < 100 ms)")
    print(
        f"  durable: {completed} sessions completed -> {counts['surveys']} SurveyResponse, {counts['answers']} "
        f"SurveyAnswer, {counts['drafts']} drafts left: {'OK' if durable else 'MISMATCH'}"
    )
    if app_run.errors:
        print(f"  first errors: {app_run.errors[:3]}")
    return durable and not app_run.errors


def report_wrk(result: dict[str, Any]) -> bool:
    app, ceiling, counts = result["app"], result["ceiling"], result["counts"]
    print(f"\n== {_servers(result)}; driven by wrk, one connection per lane ==")
    if math.isnan(app["per_second"]):
        print("  wrk is not installed: nothing measured")
        return False
    for name, run in (("USSD survey hops", app), ("ceiling, the same wrk script", ceiling)):
        print(
            f"  {name}: {run['per_second']:,.0f}/s, p50 {run['p50_ms']:.1f} ms, p99 {run['p99_ms']:.1f} ms, "
            f"errors {run['errors']:.0f}"
        )
    print("    (latency at wrk, every kind of hop together; the hop's time inside the app, p50:)")
    in_app = _in_app_by_hop(result["in_app"])
    for hop in ("dial", "open survey", "answer", "submit"):
        wall, cpu = in_app.get(hop, (math.nan, math.nan))
        print(f"    {hop:<12} in the app {wall:4.1f} ms, {cpu:4.1f} ms of CPU")
    print_cpu(result["cpu"], app["per_second"], ceiling["per_second"])
    share, of_issue = app["per_second"] / ceiling["per_second"], app["per_second"] / ISSUE_CEILING
    print(
        f"  throughput vs ceiling: {share:.0%} of the same wrk script's (target 25%); "
        f"{of_issue:.0%} of the {ISSUE_CEILING:,} req/s the issue measured"
    )
    print(f"  p99 {app['p99_ms']:.0f} ms (target < 100 ms)")
    return _wrk_durable(app, counts) and app["bad"] == 0 and app["errors"] == 0


def _wrk_durable(app: dict[str, float], counts: dict[str, int]) -> bool:
    """Every survey wrk saw end is saved with its answers, and every lane cut off mid-survey has its draft. A hop
    in flight when wrk stopped may or may not have been applied: the bounds allow for it (`ussd_survey.lua`)."""
    completed, cut = int(app["completed"]), int(app["submits_cut"])
    durable = (
        completed <= counts["surveys"] <= completed + cut
        and counts["answers"] == QUESTIONS * counts["surveys"]
        and app["drafts_min"] <= counts["drafts"] <= app["drafts_max"]
    )
    print(
        f"  durable: {completed} surveys completed ({cut} more cut off while submitting) -> {counts['surveys']} "
        f"SurveyResponse, {counts['answers']} SurveyAnswer; {counts['drafts']} drafts left by the lanes cut off "
        f"mid-survey ({app['drafts_min']:.0f}-{app['drafts_max']:.0f} expected): {'OK' if durable else 'MISMATCH'}; "
        f"unexpected screens {app['bad']:.0f}"
    )
    return durable


def print_cpu(cpu: dict[str, common.CpuUse], app_per_second: float, ceiling_per_second: float) -> None:
    """The machine's CPU by kind of process during each whole run (its ramp included), and per request."""
    print(f"  CPU during the app's run: {cpu['app'].line(app_per_second)}")
    print(f"  CPU during the ceiling's run: {cpu['ceiling'].line(ceiling_per_second)}")


def _in_app_by_hop(rows: list[tuple[int, float, float]]) -> dict[str, tuple[float, float]]:
    """Median wall and CPU milliseconds inside the app per kind of hop, the kind told by the `text` segments."""
    kinds: dict[str, list[tuple[float, float]]] = {}
    for segments, wall_ms, cpu_ms in rows:
        kinds.setdefault(_hop_kind(segments), []).append((wall_ms, cpu_ms))
    return {
        kind: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for kind, values in kinds.items()
    }


def _hop_kind(segments: int) -> str:
    """The kind of a survey hop told by how many `*`-separated inputs its `text` holds (see `survey_forms`)."""
    if segments == 0:
        return "dial"
    if segments == 1:
        return "open survey"
    return "submit" if segments == HOPS_PER_SURVEY - 1 else "answer"


# --- profile --------------------------------------------------------------------------------------------------


class Counters:
    """SQL statements and Redis round trips, counted while a profile runs."""

    def __init__(self, *engines: Any) -> None:
        from redis.connection import Connection
        from sqlalchemy import event

        self.sql = 0
        self.redis = 0
        for engine in engines:
            event.listen(engine, "before_cursor_execute", self._on_sql)
        from db import DriverStatement

        run_on_driver = DriverStatement.run

        def counted_on_driver(statement: Any, parameters: Any) -> None:  # the answer's write, past SQLAlchemy
            self.sql += 1
            run_on_driver(statement, parameters)

        DriverStatement.run = counted_on_driver  # type: ignore[method-assign]
        original = Connection.send_packed_command

        def counted(connection: Any, command: Any, check_health: bool = True) -> None:
            self.redis += 1
            original(connection, command, check_health)

        Connection.send_packed_command = counted  # type: ignore[method-assign]

    def _on_sql(self, *_args: Any) -> None:
        self.sql += 1


def profile_hops(args: argparse.Namespace) -> None:
    """Survey hops in-process (Flask test client, PostgreSQL + Redis) under cProfile."""
    app = common.in_process_app(DATABASE, REDIS_DB)
    services = app.extensions["services"]
    phones = seed_survey_clients(services, args.profile_sessions + 2)
    client = app.test_client()
    for n, phone in enumerate(phones[:2]):  # warm up: imports, scorecard load, pools
        run_sync_survey(client, phone, f"warm_{n}")
    counters = Counters(services.engine, services.autocommit_engine)
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    for n, phone in enumerate(phones[2:]):
        run_sync_survey(client, phone, f"profile_{n}")
    profiler.disable()
    seconds = time.perf_counter() - started
    hops = args.profile_sessions * HOPS_PER_SURVEY
    print(f"\n== profile: {hops} survey hops in-process on PostgreSQL + Redis ==")
    print(
        f"  {seconds / hops * 1000:.2f} ms per hop (under cProfile, which inflates Python-heavy code), "
        f"{counters.sql / hops:.1f} SQL statements and {counters.redis / hops:.1f} Redis round trips per hop"
    )
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
    stats.print_stats(r"/work/main/(?!\.venv)", 45)
    print(_trim(out.getvalue()))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    print(_trim(out.getvalue()))
    if args.profile_only:
        plain = timed_surveys(services, client, args.profile_sessions, "plain", 40_000)
        print(f"\n== in-process, no profiler: {plain:.2f} ms/hop ({common.machine_note()}) ==")
        kinds = cpu_per_hop_kind(services, client, args.profile_sessions, 50_000)
        print("  CPU per hop (median, ms): " + ", ".join(f"{kind} {ms:.2f}" for kind, ms in kinds.items()))
    services.dispose()


def timed_surveys(services: Any, client: Any, count: int, tag: str, first: int) -> float:
    """Milliseconds per hop over `count` surveys of fresh clients, in-process, no profiler."""
    phones = seed_survey_clients(services, count, first=first)
    started = time.perf_counter()
    for n, phone in enumerate(phones):
        run_sync_survey(client, phone, f"{tag}_{n}")
    return (time.perf_counter() - started) / (count * HOPS_PER_SURVEY) * 1000


def cpu_per_hop_kind(services: Any, client: Any, count: int, first: int) -> dict[str, float]:
    """This process's CPU time per hop (median over `count` surveys of fresh clients), by kind of hop: CPU time,
    unlike wall time, does not count the waits for PostgreSQL and Redis, nor other processes on the machine."""
    kinds = ["dial", "open survey"] + ["answer"] * QUESTIONS + ["submit"]
    seconds: dict[str, list[float]] = {kind: [] for kind in kinds}
    for n, phone in enumerate(seed_survey_clients(services, count, first=first)):
        for kind, form in zip(kinds, survey_forms(phone, f"cpu_{n}"), strict=True):
            started = time.process_time()
            client.post(common.USSD_PATH, data=form)
            seconds[kind].append(time.process_time() - started)
    return {kind: statistics.median(values) * 1000 for kind, values in seconds.items()}


def survey_forms(number: str, session_id: str) -> list[dict[str, str]]:
    """The 13 webhook forms of one survey that answers 1 everywhere (Africa's Talking's cumulative `text`)."""
    texts = [""] + ["*".join(["1"] * hop) for hop in range(1, HOPS_PER_SURVEY)]
    return [
        {"sessionId": session_id, "serviceCode": "*384*123#", "phoneNumber": number, "networkCode": "63902", "text": t}
        for t in texts
    ]


def _trim(text: str) -> str:
    lines = text.splitlines()
    start = next((n for n, line in enumerate(lines) if line.strip().startswith("ncalls")), 0)
    return "\n".join(line.replace(str(common.ROOT) + "/", "") for line in lines[start - 1 :] if line.strip())


def run_sync_survey(client: Any, number: str, session_id: str) -> None:
    for form in survey_forms(number, session_id):
        body = client.post(common.USSD_PATH, data=form).get_data(as_text=True)
        if not body.startswith(("CON ", "END ")):
            raise RuntimeError(f"unexpected screen while profiling: {body[:80]!r}")
    if not body.startswith("END "):
        raise RuntimeError(f"survey did not finish while profiling: {body[:80]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=400, help="surveys to run (one client each)")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--think", type=float, default=0.0, help="mean seconds a phone pauses before each hop, like a person (0: none)"
    )
    parser.add_argument(
        "--stagger",
        type=float,
        default=1.0,
        help="seconds over which the lanes start, so their hops interleave; figures cover the window in which "
        "every lane is busy (0: all start at once and stay in lockstep, figures cover the whole run)",
    )
    parser.add_argument("--worker-class", nargs="+", default=["sync", "gthread"], choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (the issue's ceiling uses 2)")
    parser.add_argument("--seconds", type=float, default=240, help="time cap of each load run")
    parser.add_argument(
        "--driver",
        choices=["python", "wrk"],
        default="python",
        help="python: the aiohttp driver, timed per kind of hop; wrk: the same load from wrk (ussd_survey.lua), "
        "which costs the two cores far less",
    )
    parser.add_argument("--wrk-seconds", type=float, default=10, help="length of each wrk run")
    parser.add_argument("--profile-sessions", type=int, default=20, help="surveys to profile (0: skip)")
    parser.add_argument(
        "--profile-only", action="store_true", help="skip the gunicorn runs; profile, then time hops in-process"
    )
    args = parser.parse_args()
    common.exit_on_sigterm()
    print(f"machine: {common.machine_note()}")
    ok = True
    with tempfile.TemporaryDirectory() as folder:
        for worker_class in [] if args.profile_only else args.worker_class:
            if args.driver == "wrk":
                ok = report_wrk(run_class_wrk(args, worker_class, Path(folder))) and ok
            else:
                ok = report_class(run_class(args, worker_class, Path(folder))) and ok
    if args.profile_sessions:
        profile_hops(args)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
