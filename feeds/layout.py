"""Which measures a feed cell has, in which order: the layout every aggregate row and the profile sums share.

The bands and poverty-line sets in `feed_keys` decide the measure columns (one count per band and band pair, one
per line set, one likelihood sum per line), so the layout is read from the database and changes when a survey
brings a band label or a set of poverty lines nobody had before. `feeds/aggregates.py` builds its statement from it;
`feeds/sums.py` stores each client profile's measures in it, under the layout's `signature`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, and_, case, cast, func, select
from sqlalchemy.orm import Session

from feeds.models import FACT_LINES, feed_keys


class AggregateError(ValueError):
    """A request for aggregates that cannot be answered (unknown level, malformed period label, too many lines)."""


class AggregatesUnavailable(AggregateError):
    """The stored surveys cannot be aggregated as they stand (too many band labels or poverty lines), or changed
    while being read: no request can get them until the MFI acts (`ppi reband`) or the data settle."""


@dataclass(frozen=True)
class Layout:
    """The measure columns of every fine, partial and result row, in order: clients, surveys, score sum and count,
    one count per band, one per (from, to) band pair since the first survey and from the previous period, one count
    of clients per poverty-line set, then one likelihood sum per poverty line (slug order). Bands and line sets are
    the ones in `feed_keys` (ids, labels, slugs). A line's rate divides its sum by the clients of the sets it is in,
    so a cell is one row whichever scorecards its clients took."""

    bands: tuple[tuple[int, str], ...]
    line_sets: dict[int, tuple[str, ...]]

    @cached_property
    def band_labels(self) -> tuple[str, ...]:
        return tuple(label for _id, label in self.bands)

    @cached_property
    def pairs(self) -> list[tuple[tuple[int, str], tuple[int, str]]]:
        return [(before, after) for before in self.bands for after in self.bands]

    @cached_property
    def pair_labels(self) -> list[tuple[str, str]]:
        return [(before, after) for (_a, before), (_b, after) in self.pairs]

    @cached_property
    def band_columns(self) -> slice:
        return slice(4, 4 + len(self.bands))

    @cached_property
    def first_columns(self) -> slice:
        return slice(4 + len(self.bands), 4 + len(self.bands) + len(self.pairs))

    @cached_property
    def previous_columns(self) -> slice:
        return slice(4 + len(self.bands) + len(self.pairs), 4 + len(self.bands) + 2 * len(self.pairs))

    @cached_property
    def set_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.line_sets))

    @cached_property
    def counts(self) -> int:
        """The integer measures (all but the likelihood sums)."""
        return int(self.previous_columns.stop) + len(self.set_ids)

    @cached_property
    def slugs(self) -> tuple[str, ...]:
        return tuple(sorted({slug for slugs in self.line_sets.values() for slug in slugs}))

    @cached_property
    def slug_clients(self) -> list[tuple[int, ...]]:
        """Per line (slug order), the measure columns counting the clients of the line sets that have it."""
        first = self.previous_columns.stop
        return [
            tuple(first + index for index, set_id in enumerate(self.set_ids) if slug in self.line_sets[set_id])
            for slug in self.slugs
        ]

    @cached_property
    def partial_types(self) -> list[Any]:
        """The SQL type of each measure in the fine and partial rows. Counts are 4-byte integers (they cannot
        exceed the number of clients) because PostgreSQL sums those into 8-byte integers, and 8-byte ones into
        slower numerics; the score sum is 8 bytes, the likelihood sums floats."""
        return [Integer, Integer, BigInteger, *[Integer] * (self.counts - 3), *[Float] * len(self.slugs)]


def read_layout(session: Session) -> Layout:
    keys = select(feed_keys.c.id, feed_keys.c.kind, feed_keys.c.value).where(feed_keys.c.kind.in_(("band", "lines")))
    bands, line_sets = [], {}
    for key_id, kind, value in session.execute(keys):
        if kind == "band":
            bands.append((key_id, value))
        else:
            line_sets[key_id] = tuple(value.split(","))
    too_long = [slugs for slugs in line_sets.values() if len(slugs) > FACT_LINES]
    if too_long:
        raise AggregatesUnavailable(f"a survey has more than {FACT_LINES} poverty lines ({', '.join(too_long[0])})")
    return Layout(tuple(sorted(bands, key=lambda band: band[1])), line_sets)


def measures(facts: Any, layout: Layout) -> list[Any]:
    """The aggregates of `facts` rows (the fact table or a subquery with its columns), in `Layout` order."""
    score = facts.c.headline_score
    band = facts.c.band_id
    counts: list[Any] = [func.count(), func.sum(facts.c.surveys), func.sum(score), func.count(score)]
    counts += [func.count().filter(band == band_id) for band_id, _label in layout.bands]
    for before in (facts.c.first_band_id, facts.c.prev_band_id):
        counts += [func.count().filter(and_(before == a, band == b)) for (a, _), (b, _) in layout.pairs]
    counts += [func.count().filter(facts.c.line_set_id == set_id) for set_id in layout.set_ids]
    lines = [func.sum(_likelihood(facts, layout, slug)) for slug in layout.slugs]
    return [cast(measure, type_) for measure, type_ in zip([*counts, *lines], layout.partial_types, strict=True)]


def _likelihood(facts: Any, layout: Layout, slug: str) -> Any:
    """A fact's likelihood for the line `slug`: the `line_N` column its line set keeps it in (NULL if the set does
    not have the line). With one line set, its column as it is (facts of no set have NULL there)."""
    columns = {
        set_id: facts.c[f"line_{slugs.index(slug) + 1}"] for set_id, slugs in layout.line_sets.items() if slug in slugs
    }
    if len(layout.line_sets) == 1:
        return next(iter(columns.values()))
    return case(*((facts.c.line_set_id == set_id, column) for set_id, column in columns.items()))


def signature(layout: Layout) -> str:
    """The layout as a string that changes whenever its columns do (stored with each profile's sums)."""
    sets = sorted((set_id, ",".join(slugs)) for set_id, slugs in layout.line_sets.items())
    return json.dumps({"bands": [list(band) for band in layout.bands], "line_sets": sets}, separators=(",", ":"))
