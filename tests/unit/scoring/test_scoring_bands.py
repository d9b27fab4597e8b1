"""MFI score bands: parsing rules and assignment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scoring.errors import BandsError
from scoring.scorecard import Band, band_for, parse_bands

STANDARD = "0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor"


def test_parse_standard_bands() -> None:
    bands = parse_bands(STANDARD)
    assert bands[0] == Band(0, 24, "Very poor")
    assert [b.label for b in bands] == ["Very poor", "Poor", "At risk", "Non-poor"]


def test_band_order_in_text_does_not_matter() -> None:
    assert parse_bands("50-100:High, 0-49:Low") == (Band(0, 49, "Low"), Band(50, 100, "High"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0-24:A,26-100:B", "gap between bands: nothing covers 25-25"),
        ("0-30:A,25-100:B", "bands overlap: 0-30:A and 25-100:B"),
        ("5-100:A", "must start at 0"),
        ("0-50:A,51-99:B", "must end at 100"),
        ("0-100", "cannot read band"),
        ("0-x:A", "cannot read band"),
        ("50-10:A", "ends before it starts"),
        ("", "no bands given"),
        ("0-4\u00b2:A,43-100:B", "cannot read band"),  # a superscript digit: isdigit() says yes, int() no
        ("0-49:A,50-100:" + "V" * 65, "is longer than 64 characters"),  # the surveys' and clients' band columns
    ],
)
def test_bad_bands_are_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(BandsError, match=message):
        parse_bands(text)


@given(st.sets(st.integers(min_value=1, max_value=100), max_size=10))
def test_band_assignment_is_total_over_0_to_100(cuts: set[int]) -> None:
    starts = [0, *sorted(cuts)]
    ends = [s - 1 for s in starts[1:]] + [100]
    text = ",".join(f"{low}-{high}:B{low}" for low, high in zip(starts, ends, strict=True))
    bands = parse_bands(text)
    for value in range(101):
        holding = [b for b in bands if value in b]
        assert holding == [band_for(bands, value)]
