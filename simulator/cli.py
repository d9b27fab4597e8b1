"""`impact-connect demo`: migrate, seed the demo MFI idempotently, and serve.

`demo` is the one command a new user runs: it migrates the configured database (the embedded SQLite file by
default), seeds the demo MFI if it is not there yet, says what to dial, and serves the app.
"""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext
from werkzeug.serving import run_simple

import migrate
from db import utcnow
from simulator.seed import DemoSummary, seed_demo

TREE_ORDER = ("country", "region", "branch", "center", "group")


@click.command("demo", help="Migrate the embedded database, seed the demo MFI and serve.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@with_appcontext
def demo_command(host: str, port: int) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    services = app.extensions["services"]
    click.echo("migrating the database ...")
    migrate.upgrade(services.settings)
    click.echo("seeding the demo MFI (idempotent) ...")
    with services.transaction() as session:
        summary = seed_demo(session, now=utcnow())
    click.echo(describe(summary, host=host, port=port))
    run_simple(host, port, app, threaded=True, use_reloader=False)


def describe(summary: DemoSummary, *, host: str, port: int) -> str:
    """What was seeded and what to dial, for the terminal."""
    order = {level: rank for rank, level in enumerate(TREE_ORDER)}
    by_depth = sorted(summary.offices_by_level.items(), key=lambda item: (order.get(item[0], len(order)), item[0]))
    levels = ", ".join(f"{count} {level}" for level, count in by_depth)
    created = f"{summary.rows_created} rows added" if summary.rows_created else "already seeded, nothing added"
    base = f"http://{host}:{port}"
    return "\n".join(
        [
            f"demo MFI ready ({created}): offices {levels}; {summary.officers} loan officers; "
            f"{summary.clients} clients; {summary.accounts} accounts; {summary.surveys} surveys",
            f"  simulator:     {base}/simulator",
            "  USSD webhook:  POST /webhooks/africastalking/ussd, or run "
            "`impact-connect simulate ussd --phone +254700000002`",
            "  a client:      +254700000002 (C0002); +254700000001 is shared by C0001 and C0200",
            "  a loan officer: +254711000001 (S001)",
            f"serving on {base} (Ctrl+C to stop)",
        ]
    )
