"""`impact-connect feed push|status|replay`: the impact-portal feed."""

from __future__ import annotations

import click


@click.group("feed", help="The impact-portal feed.")
def feed_group() -> None:
    pass
