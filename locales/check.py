"""Keep the catalogs honest: `python -m locales.check` fails when the template is out of date, when a catalog does
not compile, or when any entry is untranslated or fuzzy; `--update` re-extracts and merges the catalogs.

CI runs the check; translators run `--update`, translate the new entries, and commit.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from locales import CATALOGS, SUPPORTED
from locales.extract import KEYWORDS

PROJECT = CATALOGS.parent
TEMPLATE = CATALOGS / "messages.pot"
SKIPPED_DIRS = {"tests", "bench", "instance", "build", "migrations", "node_modules"}
# Templates (the /impact page) with Jinja's own extractor: `{{ _("text", name=value) }}`, singular only.
METHOD_MAP = [("**.py", "locales.extract:extract_with_plurals"), ("**/templates/**.html", "jinja2.ext:babel_extract")]


def extract() -> Catalog:
    catalog = Catalog(project="impact-connect", fuzzy=False)
    for filename, lineno, message, comments, context in extract_from_dir(
        str(PROJECT), METHOD_MAP, keywords=KEYWORDS, directory_filter=_wanted_dir
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def _wanted_dir(path: str) -> bool:
    name = Path(path).name
    return not (name.startswith((".", "_")) or name in SKIPPED_DIRS)


def render(catalog: Catalog) -> bytes:
    buffer = io.BytesIO()
    # File names without line numbers: moving code around must not make the template "out of date".
    write_po(buffer, catalog, omit_header=True, sort_output=True, width=120, include_lineno=False)
    return buffer.getvalue()


def problems() -> list[str]:
    found: list[str] = []
    template = extract()
    if not TEMPLATE.exists() or TEMPLATE.read_bytes() != render(template):
        found.append("locales/messages.pot is out of date: run `python -m locales.check --update`")
    for locale in SUPPORTED:
        if locale == "en":
            continue
        found.extend(_catalog_problems(locale, template))
    return found


def _catalog_problems(locale: str, template: Catalog) -> list[str]:
    path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return [f"{locale}: no catalog at {path.relative_to(PROJECT)}"]
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=locale)
    found = []
    for message in template:
        if not message.id:
            continue
        entry = catalog.get(message.id)
        if entry is None:
            found.append(f"{locale}: missing {_short(message.id)}")
        elif entry.fuzzy:
            found.append(f"{locale}: fuzzy {_short(message.id)}")
        elif not _translated(entry.string):
            found.append(f"{locale}: untranslated {_short(message.id)}")
    for message, errors in catalog.check():
        found.extend(f"{locale}: {_short(message.id)}: {error}" for error in errors)
    try:
        write_mo(io.BytesIO(), catalog)
    except Exception as exc:  # noqa: BLE001 - any compile failure is a finding
        found.append(f"{locale}: does not compile: {exc}")
    return found


def _translated(value: object) -> bool:
    if isinstance(value, list | tuple):
        return bool(value) and all(value)
    return bool(value)


def _short(message_id: object) -> str:
    text = message_id[0] if isinstance(message_id, list | tuple) else str(message_id)
    return repr(text[:60])


def update() -> None:
    template = extract()
    TEMPLATE.write_bytes(render(template))
    for locale in SUPPORTED:
        if locale == "en":
            continue
        path = CATALOGS / locale / "LC_MESSAGES" / "messages.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("rb") as handle:
                catalog = read_po(handle, locale=locale)
        else:
            catalog = Catalog(locale=locale, project="impact-connect")
        catalog.update(template, no_fuzzy_matching=True)
        buffer = io.BytesIO()
        write_po(
            buffer,
            catalog,
            sort_output=True,
            width=120,
            ignore_obsolete=True,
            include_previous=False,
            include_lineno=False,
        )
        path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--update", action="store_true", help="re-extract the template and merge every catalog")
    args = parser.parse_args(argv)
    if args.update:
        update()
        print("catalogs updated")
        return 0
    found = problems()
    for problem in found:
        print(problem)
    print("catalogs OK" if not found else f"{len(found)} catalog problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
