"""`impact-connect ppi configure` and `clients show`: the MFI's PPI settings and a client's poverty status."""

from __future__ import annotations

import click


@click.group("ppi", help="PPI settings.")
def ppi_group() -> None:
    pass


@click.command("show", help="Show a client's poverty status and surveys (PHONE or EXTERNAL_ID).")
@click.argument("who")
@click.option("--json", "as_json", is_flag=True)
def client_show_command(who: str, as_json: bool) -> None:
    raise click.ClickException("not implemented yet")


def headline_settings() -> None:
    """The MFI's headline line and bands, for `scorecards score` (None until PPI settings exist)."""
    return None
