"""`impact-connect consent ...`: a client's consent history."""

from __future__ import annotations

import click


@click.group("consent", help="Data-sharing consent.")
def consent_group() -> None:
    pass
