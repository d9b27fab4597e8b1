"""A Babel extraction method that understands our plural call style.

We call `_("%(n)d try left", plural="%(n)d tries left", n=left)`: one function for singular and plural, because the
engine receives a single `translate` callable. Babel's stock Python extractor needs one keyword spec per function
name, and the plural spec (`_:1,2`) drops every singular call. So we run the stock extractor twice and report a
call with two strings under the pseudo-keyword `PLURAL`, whose spec is `(1, 2)`. Used by `locales.check`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from io import BytesIO
from typing import IO, Any

from babel.messages import extract as babel_extract

# Babel's stubs describe the public `extract()` results, not the raw (lineno, funcname, messages, comments) tuples the
# Python extractor yields, so it is used untyped here.
extract_python: Any = babel_extract.extract_python

FUNCTIONS = ("_", "translate")
MARKERS = ("N_",)
PLURAL = "PLURAL"
KEYWORDS: dict[str, Any] = {**{name: None for name in FUNCTIONS + MARKERS}, PLURAL: (1, 2)}


def extract_with_plurals(
    fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str], options: dict[str, Any]
) -> Iterator[tuple[int, str, Any, list[str]]]:
    source = fileobj.read()
    text = source.decode("utf-8", errors="replace")
    plural_calls = {
        (lineno, messages[0]): (lineno, PLURAL, messages[:2], comments)
        for lineno, _funcname, messages, comments in extract_python(BytesIO(source), FUNCTIONS, comment_tags, options)
        if isinstance(messages, tuple) and len(messages) >= 2 and messages[0] and _passed_as_plural(text, messages[1])
    }
    for lineno, funcname, messages, comments in extract_python(
        BytesIO(source), FUNCTIONS + MARKERS, comment_tags, options
    ):
        first = messages[0] if isinstance(messages, tuple) else messages
        yield plural_calls.get((lineno, first), (lineno, funcname, messages, comments))


def _passed_as_plural(source: str, candidate: object) -> bool:
    """The stock extractor keeps string arguments but not their names: only `plural="..."` makes a plural."""
    if not isinstance(candidate, str) or not candidate:
        return False
    return re.search(r"plural\s*=\s*(['\"])" + re.escape(candidate) + r"\1", source) is not None
