"""Complementary suppression: which cells to withhold besides those under k clients, so that a withheld cell cannot be
worked out by subtraction from the cells that are shown.

Why: an office's clients are its own plus its child offices', and "all" is every top office's; the officers of an
MFI add up to "all" less the clients without an officer. So a parent less its shown children gives the withheld
children's total (with the parent's own clients): a region of 8 shown, one branch of 6 shown, and the withheld
branch of 2 is there for anyone to read. The rule, for each period, walking each tree from the root down:

- a node that is withheld has its whole subtree withheld (nothing under it is shown to subtract from it);
- for a shown node, what is left once its shown children are taken away (its own clients plus its withheld
  children) must be none or at least k; while it is between, its smallest shown child is withheld too.

What a reader can then subtract is always a group of none or of k or more clients. Not covered (named in the
README): a period kind against another (months within a quarter) and the fund and product levels, whose clients
can hold several funds and products, so they do not add up to anything shown.

Plain data in, plain data out: a cell is (level, group id, period ordinal) -> clients.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Mapping

Node = tuple[str, str]  # (level, group id)
CellKey = tuple[str, str, int]  # (level, group id, period ordinal)


def withheld(clients: Mapping[CellKey, int], parents: Mapping[Node, Node | None], k: int) -> set[CellKey]:
    """Every cell to withhold: those under `k` clients and their complements. `parents` gives each node its parent
    (None for the root); nodes it does not name are left out of the walk (their cells are withheld only when under
    `k`)."""
    by_period: dict[int, dict[Node, int]] = defaultdict(dict)
    for (level, group_id, ordinal), count in clients.items():
        by_period[ordinal][level, group_id] = count
    children: dict[Node, list[Node]] = defaultdict(list)
    for node, parent in parents.items():
        if parent is not None:
            children[parent].append(node)
    roots = [node for node, parent in parents.items() if parent is None]
    hidden: set[CellKey] = set()
    for ordinal, counts in by_period.items():
        hidden.update((level, group_id, ordinal) for level, group_id in _withheld_in_period(counts, children, roots, k))
    return hidden


def _withheld_in_period(
    counts: Mapping[Node, int], children: Mapping[Node, list[Node]], roots: list[Node], k: int
) -> set[Node]:
    """Top down (breadth first, so a node is decided before its children are looked at)."""
    hidden = {node for node, count in counts.items() if count < k}
    queue = deque(root for root in roots if root in counts)
    while queue:
        node = queue.popleft()
        kids = [kid for kid in children.get(node, ()) if kid in counts]
        if not kids:
            continue
        queue.extend(kids)
        if node in hidden:
            hidden.update(kids)  # withheld parent, withheld subtree
            continue
        shown = [kid for kid in kids if kid not in hidden]
        left = counts[node] - sum(counts[kid] for kid in shown)
        if 0 < left < k:
            shown.sort(key=lambda kid: (counts[kid], kid))
            for smallest in shown:
                hidden.add(smallest)
                left += counts[smallest]
                if left >= k:
                    break
    return hidden
