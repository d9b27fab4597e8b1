"""`impact-connect apikeys ...`: create, list and revoke API keys."""

from __future__ import annotations

import click


@click.group("apikeys", help="API keys for the portal, lenders and admins.")
def apikeys_group() -> None:
    pass
