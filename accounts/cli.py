"""`impact-connect clients ...`: look up a client, issue activation codes, unlock and reset PINs."""

from __future__ import annotations

import click

from surveys.cli import client_show_command


@click.group("clients", help="Client look-up and account administration.")
def clients_group() -> None:
    pass


clients_group.add_command(client_show_command)
