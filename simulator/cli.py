"""`impact-connect demo` and `impact-connect simulate ussd|sms`."""

from __future__ import annotations

import click


@click.command("demo", help="Migrate the embedded database, seed the demo MFI and serve.")
def demo_command() -> None:
    raise click.ClickException("not implemented yet")


@click.group("simulate", help="A terminal phone.")
def simulate_group() -> None:
    pass
