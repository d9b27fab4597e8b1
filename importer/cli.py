"""`impact-connect import KIND FILE`: CSV import of offices, staff, clients, accounts and transactions."""

from __future__ import annotations

import click


@click.command("import", help="Import a CSV file.")
@click.argument("kind", type=click.Choice(["offices", "staff", "clients", "accounts", "transactions"]))
@click.argument("file", type=click.Path())
def import_command(kind: str, file: str) -> None:
    raise click.ClickException("not implemented yet")
