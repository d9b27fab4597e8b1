"""Complementary suppression on plain data: what a reader could subtract is always none or k clients or more."""

from __future__ import annotations

from feeds.complementary import withheld

ROOT = ("all", "all")
TREE = {
    ROOT: None,
    ("region", "R1"): ROOT,
    ("branch", "BA"): ("region", "R1"),
    ("branch", "BB"): ("region", "R1"),
    ("branch", "BC"): ("region", "R1"),
    ("center", "BA-1"): ("branch", "BA"),
}


def _cells(**clients: int) -> dict[tuple[str, str, int], int]:
    """branch BA=6 -> {("branch", "BA", 1): 6}; the level is looked up in TREE."""
    levels = {group_id: level for level, group_id in TREE}
    return {(levels[group_id.replace("_", "-")], group_id.replace("_", "-"), 1): n for group_id, n in clients.items()}


def test_a_branch_under_k_takes_its_smallest_shown_sibling_with_it() -> None:
    cells = _cells(all=14, R1=14, BA=6, BB=2, BC=6)
    assert withheld(cells, TREE, 5) == {("branch", "BB", 1), ("branch", "BA", 1)}  # R1 - BA - BC would be BB


def test_nothing_more_is_withheld_when_the_withheld_already_add_up_to_k() -> None:
    cells = _cells(all=11, R1=11, BA=6, BB=2, BC=3)
    assert withheld(cells, TREE, 5) == {("branch", "BB", 1), ("branch", "BC", 1)}  # together 5: safe as they are


def test_an_offices_own_clients_count_in_what_is_left() -> None:
    # BA has 4 clients of its own and a centre of 3: the centre is withheld (under k), and what BA less its shown
    # children leaves (its own 4 and the centre's 3) is 7, so nothing else goes.
    cells = _cells(all=7, R1=7, BA=7, BA_1=3)
    assert withheld(cells, TREE, 5) == {("center", "BA-1", 1)}


def test_under_an_office_withheld_as_a_complement_nothing_is_shown() -> None:
    # BB (2) is under k; BA and BC (6 each) tie as the smallest sibling and BA goes, with its centre of 5, which
    # would otherwise give BA away (BA - its own 1 client).
    cells = _cells(all=14, R1=14, BA=6, BA_1=5, BB=2, BC=6)
    assert withheld(cells, TREE, 5) == {("branch", "BB", 1), ("branch", "BA", 1), ("center", "BA-1", 1)}


def test_each_period_is_decided_on_its_own() -> None:
    cells = _cells(all=8, R1=8, BA=6, BB=2) | {("region", "R1", 2): 6, ("branch", "BA", 2): 6, ("all", "all", 2): 6}
    assert withheld(cells, TREE, 5) == {("branch", "BB", 1), ("branch", "BA", 1)}  # period 2 is whole


def test_a_star_of_officers_under_all() -> None:
    star = {ROOT: None, ("officer", "S1"): ROOT, ("officer", "S2"): ROOT, ("officer", "S3"): ROOT}
    cells = {("all", "all", 1): 13, ("officer", "S1", 1): 6, ("officer", "S2", 1): 5, ("officer", "S3", 1): 2}
    assert withheld(cells, star, 5) == {("officer", "S3", 1), ("officer", "S2", 1)}
