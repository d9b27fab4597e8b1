"""`impact-connect import KIND FILE`: CSV import of offices, staff, clients, accounts and transactions.

The edge of the importer: reads the file, shows progress on long files, prints one line per bad row and a summary,
and exits non-zero when any row failed. Anything that stops the whole file (missing file, wrong encoding, broken
CSV, missing columns, unreachable database) is one line on stderr and nothing is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import phonenumbers
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from importer.reader import FileError, Table, decode, read_table
from importer.rows import KINDS, REQUIRED
from importer.service import ImportReport, import_table

LONG_FILE_ROWS = 5000
MAX_ERRORS_SHOWN = 200


class DatabaseUnreachable(click.ClickException):
    exit_code = 2


@click.command("import", help="Import a CSV file of KIND (offices, staff, clients, accounts or transactions).")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--default-region", help="Region for phone numbers without a country code (default: DEFAULT_REGION).")
@click.option("--encoding", help="Encoding of FILE when it is not UTF-8, e.g. latin-1.")
@with_appcontext
def import_command(kind: str, file: Path, default_region: str | None, encoding: str | None) -> None:
    services = current_app.extensions["services"]
    region = _region(default_region or services.settings.default_region)
    table = _read(file, kind, encoding)
    for column in table.ignored_columns:
        click.echo(f"warning: ignoring unknown column {column}", err=True)
    try:
        with _progress(len(table.rows)) as advance:
            report = import_table(services, kind, table, default_region=region, progress=advance)
    except SQLAlchemyError as exc:
        raise DatabaseUnreachable(f"database error: {_first_line(exc)}") from exc
    _print_report(report)
    if report.failed:
        sys.exit(1)


def _region(code: str) -> str:
    region = code.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise click.BadParameter(f"{code!r} is not a region code such as KE", param_hint="--default-region")
    return region


def _read(file: Path, kind: str, encoding: str | None) -> Table:
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise click.ClickException(f"{file}: no such file") from None
    except OSError as exc:
        raise click.ClickException(f"{file}: cannot read ({exc.strerror})") from None
    try:
        text = decode(data, name=str(file), encoding=encoding)
        return read_table(text, name=str(file), columns=KINDS[kind], required=REQUIRED[kind])
    except FileError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None] | None]:
    """A progress bar on stderr when someone is watching or the file is long; silent otherwise."""
    if not (total >= LONG_FILE_ROWS or sys.stderr.isatty()):
        yield None
        return
    with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
        yield bar.update


def _print_report(report: ImportReport) -> None:
    for error in report.errors[:MAX_ERRORS_SHOWN]:
        click.echo(str(error), err=True)
    hidden = len(report.errors) - MAX_ERRORS_SHOWN
    if hidden > 0:
        click.echo(f"... and {hidden} more errors", err=True)
    click.echo(report.summary())


def _first_line(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
