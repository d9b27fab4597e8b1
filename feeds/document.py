"""The impact-portal feed document: every level's aggregates for recent periods, as one versioned JSON object.

Its shape is described by `feeds/feed.schema.json`; bump `FEED_VERSION` with any change a portal would notice.
Each group carries its series over the periods (the trend of each measure); withheld cells appear in the series as
`{"period": ..., "suppressed": true}` so a reader can tell "too few clients" from "no surveys".

The document is made as its text (`build_body`): the groups come from `feeds.aggregates.feed_groups` as canonical
JSON already (mostly written by the database), which at 1M clients takes 1.6x less time than making them as dicts
and serializing those (bench/README.md). `build` reads that text back for whoever wants the document as data (the
CLI's `feed show`, tests).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from feeds import stale
from feeds.aggregates import ALL_LEVEL, available_levels, canonical_json, feed_groups, period_label, period_ordinal
from settings import Settings
from surveys.models import PpiSettings

FEED_VERSION = "1.0"
SCHEMA_PATH = Path(__file__).resolve().parent / "feed.schema.json"
DEFAULT_PERIOD_KIND = "quarter"
DEFAULT_PERIOD_COUNT = 8


def recent_periods(
    now: datetime, period_kind: str = DEFAULT_PERIOD_KIND, count: int = DEFAULT_PERIOD_COUNT, *, timezone: str = "UTC"
) -> list[str]:
    """The `count` periods ending with the one containing `now` on the MFI's calendar (`timezone`: surveys are dated
    by it), oldest first ("2024-Q3", ..., "2026-Q2")."""
    now = now.astimezone(ZoneInfo(timezone))
    labels = {"month": f"{now:%Y-%m}", "quarter": f"{now.year}-Q{(now.month - 1) // 3 + 1}", "year": f"{now.year}"}
    last = period_ordinal(labels[period_kind], period_kind)
    return [period_label(ordinal, period_kind) for ordinal in range(last - count + 1, last + 1)]


def build(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    period_kind: str = DEFAULT_PERIOD_KIND,
    period_count: int = DEFAULT_PERIOD_COUNT,
) -> dict[str, Any]:
    """The feed document as of `now` for the MFI in `settings` (k = settings.suppression_k)."""
    body = build_body(session, settings=settings, now=now, period_kind=period_kind, period_count=period_count)
    return json.loads(body)  # type: ignore[no-any-return]


def build_body(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    period_kind: str = DEFAULT_PERIOD_KIND,
    period_count: int = DEFAULT_PERIOD_COUNT,
) -> str:
    """`to_body(build(...))`, made as text: the exact bytes that get signed and sent."""
    stale.catch_up(session)
    periods = recent_periods(now, period_kind, period_count, timezone=settings.timezone)
    levels = [ALL_LEVEL, *available_levels(session)]
    k = settings.suppression_k
    groups = feed_groups(session, levels=levels, period_kind=period_kind, k=k, periods=periods)
    fields = {
        "feed_version": FEED_VERSION,
        "mfi_id": settings.mfi_id,
        "mfi_name": settings.mfi_name,
        "generated_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "period_kind": period_kind,
        "periods": periods,
        "headline_line": _headline_line(session),
        "levels": None,  # written below, from the groups' texts
        "suppression": {"k": k, "cells_withheld": groups.withheld},
    }
    parts: list[str] = []  # joined once: the groups are 58 MB at 1M clients, and each copy of them costs 0.1 s
    for key in sorted(fields):
        parts.append(("{" if not parts else ",") + canonical_json(key) + ":")
        if key == "levels":
            parts.append("[")
            for index, level in enumerate(levels):
                parts.append(("," if index else "") + '{"groups":[')
                parts.extend(_with_commas(groups.by_level[level]))
                parts.append('],"level":' + canonical_json(level) + "}")
            parts.append("]")
        else:
            parts.append(canonical_json(fields[key]))
    parts.append("}")
    return "".join(parts)


def _with_commas(texts: list[str]) -> Iterator[str]:
    for index, text in enumerate(texts):
        if index:
            yield ","
        yield text


def to_body(document: dict[str, Any]) -> str:
    """Canonical JSON text (sorted keys, no spaces): what `build_body` makes of the document."""
    return canonical_json(document)


def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _headline_line(session: Session) -> str | None:
    return session.scalar(select(PpiSettings.headline_line).order_by(PpiSettings.id.desc()).limit(1))
