"""Convert the shared PPI sources (IPA workbooks, Mifos tables, India XML) into `scorecards/<ID>.json`.

Run once by a developer when the sources change; the service only ever reads the generated files:

    .venv/bin/python -m scoring.convert ../shared/ppi scorecards/

The output is reproducible: stable ordering, `sort_keys`, two-space indent, no timestamps. Every fault the
converter meets is kept as published (never guessed away) and written into the file's `decisions` list, using
the same codes that `scoring.loader.validate` reports.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import unicodedata
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from scoring import checks

FORMAT_VERSION = 1
MAX_SCORE = 100
IPA_REPOSITORY = "katilingban/ppitables"
MIFOS_REPOSITORY = "mifos/head"
MIFOS_SQL_PATH = "db/src/main/resources/sql"

# Source spelling of a country (lower case, no spaces) -> (ISO 3166-1 alpha-3, English name).
COUNTRIES: dict[str, tuple[str, str]] = {
    "afghanistan": ("AFG", "Afghanistan"),
    "bangladesh": ("BGD", "Bangladesh"),
    "benin": ("BEN", "Benin"),
    "bolivia": ("BOL", "Bolivia"),
    "brazil": ("BRA", "Brazil"),
    "burkinafaso": ("BFA", "Burkina Faso"),
    "cambodia": ("KHM", "Cambodia"),
    "colombia": ("COL", "Colombia"),
    "dominican": ("DOM", "Dominican Republic"),
    "ecuador": ("ECU", "Ecuador"),
    "egypt": ("EGY", "Egypt"),
    "elsalvador": ("SLV", "El Salvador"),
    "ethiopia": ("ETH", "Ethiopia"),
    "ghana": ("GHA", "Ghana"),
    "guatemala": ("GTM", "Guatemala"),
    "haiti": ("HTI", "Haiti"),
    "honduras": ("HND", "Honduras"),
    "india": ("IND", "India"),
    "indonesia": ("IDN", "Indonesia"),
    "jordan": ("JOR", "Jordan"),
    "kenya": ("KEN", "Kenya"),
    "malawi": ("MWI", "Malawi"),
    "mali": ("MLI", "Mali"),
    "mexico": ("MEX", "Mexico"),
    "morocco": ("MAR", "Morocco"),
    "mozambique": ("MOZ", "Mozambique"),
    "myanmar": ("MMR", "Myanmar"),
    "nepal": ("NPL", "Nepal"),
    "nicaragua": ("NIC", "Nicaragua"),
    "nigeria": ("NGA", "Nigeria"),
    "pakistan": ("PAK", "Pakistan"),
    "palestine": ("PSE", "Palestine"),
    "papuanewguinea": ("PNG", "Papua New Guinea"),
    "peru": ("PER", "Peru"),
    "philippines": ("PHL", "Philippines"),
    "romania": ("ROU", "Romania"),
    "russia": ("RUS", "Russia"),
    "rwanda": ("RWA", "Rwanda"),
    "senegal": ("SEN", "Senegal"),
    "sierraleone": ("SLE", "Sierra Leone"),
    "southafrica": ("ZAF", "South Africa"),
    "srilanka": ("LKA", "Sri Lanka"),
    "syria": ("SYR", "Syria"),
    "tanzania": ("TZA", "Tanzania"),
    "timorleste": ("TLS", "Timor-Leste"),
    "togo": ("TGO", "Togo"),
    "uganda": ("UGA", "Uganda"),
    "vietnam": ("VNM", "Vietnam"),
    "yemen": ("YEM", "Yemen"),
}

# Small stop-word lists: enough to tell the scorecards' languages apart deterministically.
STOP_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the of and in does is how many what which any household member members or yes".split()),
    "es": frozenset("el la los las de del en que qué se hogar cuántos cuántas tiene sí o con por una un".split()),
    "fr": frozenset("le la les de des du en est ménage il y a pas ou avec une un chef".split()),
    "pt": frozenset("o a os as de do da em que é agregado quantos tem sim não ou com".split()),
}

ANSWER_LETTER = re.compile(r"^\s*([A-Za-z])(?:\s*[.)]\s*|\s+(?=\S))")


class ConversionError(Exception):
    """The sources do not have the shape the converter relies on."""


@dataclass
class Draft:
    """A scorecard being assembled; `to_json` gives the file content."""

    id: str
    country: str
    year: int | None
    title: str
    family: str
    provenance: dict[str, Any]
    variant: str | None = None
    questions: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    likelihood_bands: list[list[int]] | None = None
    decisions: list[dict[str, str]] = field(default_factory=list)
    language: str = "en"
    language_evidence: dict[str, int] = field(default_factory=dict)

    def decide(self, fault: str, where: str, decision: str, reason: str) -> None:
        self.decisions.append({"fault": fault, "where": where, "decision": decision, "reason": reason})

    def to_json(self) -> dict[str, Any]:
        code, name = self.country, country_name(self.country)
        document: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "id": self.id,
            "country": code,
            "country_name": name,
            "year": self.year,
            "variant": self.variant,
            "title": self.title,
            "family": self.family,
            "language": self.language,
            "language_evidence": {"method": "stop-word counts over question and answer text", **self.language_evidence},
            "scoreable": bool(self.questions),
            "max_score": MAX_SCORE,
            "provenance": self.provenance,
            "poverty_lines": self.lines,
            "questions": self.questions,
            "decisions": self.decisions,
        }
        if self.likelihood_bands is not None:
            document["likelihood_bands"] = self.likelihood_bands
        return document


def country_name(alpha3: str) -> str:
    return next(name for code, name in COUNTRIES.values() if code == alpha3)


def country_code(source_name: str) -> str:
    key = re.sub(r"[^a-z]", "", source_name.lower())
    if key not in COUNTRIES:
        raise ConversionError(f"unknown country {source_name!r}: add it to COUNTRIES")
    return COUNTRIES[key][0]


def slugify(label: str) -> str:
    """Stable, lowercase, hyphenated slug of a published poverty-line label."""
    text = label.replace("$", " usd ").replace("%", " pct ").replace("_", " ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")


def answer_letter(text: str) -> str | None:
    match = ANSWER_LETTER.match(text)
    return match.group(1).upper() if match else None


def detect_language(texts: list[str]) -> tuple[str, dict[str, int]]:
    words = re.findall(r"[^\W\d_]+", " ".join(texts).lower())
    counts = {lang: sum(1 for word in words if word in stops) for lang, stops in STOP_WORDS.items()}
    best = max(sorted(counts), key=lambda lang: counts[lang])
    return best, counts


def fraction_from_percent(text: str) -> float:
    return float(Decimal(text) / 100)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def read_csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


# --------------------------------------------------------------------------------------------- IPA workbooks


def ipa_workbooks(source: Path) -> list[tuple[str, Path, Path]]:
    """(stem, scorecard csv, lookup csv) for every IPA sheet pair, paired by the sheet's `_<n>Q` suffix."""
    pairs = []
    for scorecard in sorted((source / "ipa").glob("*__scorecard__*.csv")):
        stem, _, sheet = scorecard.stem.split("__")
        lookups = sorted((source / "ipa").glob(f"{stem}__lookup__*.csv"))
        suffix = sheet.rsplit("_", 1)[-1]
        matching = [p for p in lookups if p.stem.rsplit("_", 1)[-1] == suffix] if len(lookups) > 1 else lookups
        if len(matching) != 1:
            raise ConversionError(f"cannot pair {scorecard.name} with one look-up sheet")
        pairs.append((stem, scorecard, matching[0]))
    return pairs


def convert_ipa(source: Path) -> list[Draft]:
    pairs = ipa_workbooks(source)
    sheets_per_stem = Counter(stem for stem, _, _ in pairs)
    return [convert_ipa_sheet(stem, card, lookup, sheets_per_stem[stem] > 1) for stem, card, lookup in pairs]


def convert_ipa_sheet(stem: str, card_path: Path, lookup_path: Path, has_variants: bool) -> Draft:
    match = re.fullmatch(r"([a-z]+)(\d{4})", stem)
    if not match:
        raise ConversionError(f"unexpected workbook name {stem!r}")
    country, year = country_code(match.group(1)), int(match.group(2))
    card_sheet, lookup_sheet = card_path.stem.split("__")[2], lookup_path.stem.split("__")[2]
    variant = card_sheet.rsplit("_", 1)[-1] if has_variants else None
    scorecard_id = f"{country}-{year}" + (f"-{variant}" if variant else "")
    draft = Draft(
        id=scorecard_id,
        country=country,
        year=year,
        variant=variant,
        title=f"PPI {country_name(country)} {year}" + (f" ({variant})" if variant else ""),
        family="per-line",
        provenance={
            "authors": "Innovations for Poverty Action (IPA)",
            "licence": "IPA PPI terms of use; redistributed in the MIT-licensed R package",
            "repository": IPA_REPOSITORY,
            "path": f"data-raw/sources/{stem}.xlsx",
            "sheets": {"scorecard": card_sheet, "lookup": lookup_sheet},
            "extracts": [f"ipa/{card_path.name}", f"ipa/{lookup_path.name}"],
            "year_meaning": "workbook publication year (from the file name), not the survey data year",
        },
    )
    rows = read_csv_rows(card_path)
    labels = rows[0][4:]
    draft.lines = [{"slug": slug, "label": label} for slug, label in zip(unique_slugs(labels), labels, strict=True)]
    draft.questions = ipa_questions(draft, rows[1:])
    attach_ipa_lookups(draft, read_csv_rows(lookup_path))
    finish(draft)
    return draft


def unique_slugs(labels: list[str]) -> list[str]:
    slugs = [slugify(label) for label in labels]
    duplicates = [slug for slug, count in Counter(slugs).items() if count > 1]
    if duplicates:
        raise ConversionError(f"poverty-line labels give duplicate slugs {duplicates}")
    return slugs


def ipa_questions(draft: Draft, rows: list[list[str]]) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    for row in rows:
        number, text, note, answer_text, *cells = row
        if not questions or questions[-1]["number"] != int(number):
            if int(number) != len(questions) + 1:
                raise ConversionError(f"{draft.id}: question numbers not consecutive at {number}")
            questions.append({"number": int(number), "text": text, "note": note or None, "answers": []})
        question = questions[-1]
        answer = {
            "text": answer_text,
            "letter": answer_letter(answer_text),
            "points": ipa_points(draft, question, answer_text, cells),
        }
        blank = [line["slug"] for line, cell in zip(draft.lines, cells, strict=True) if not cell.strip()]
        if blank:
            answer["blank_points_in_source"] = blank
        question["answers"].append(answer)
    return questions


def ipa_points(draft: Draft, question: dict[str, Any], answer_text: str, cells: list[str]) -> list[int]:
    points = []
    for cell in cells:
        value = Decimal(cell.strip() or "0")
        if value != value.to_integral_value():
            raise ConversionError(f"{draft.id} Q{question['number']} {answer_text!r}: non-integer points {cell!r}")
        points.append(int(value))
    return points


def attach_ipa_lookups(draft: Draft, rows: list[list[str]]) -> None:
    header, body = rows[0], rows[1:]
    if header[0] != "score" or [int(row[0]) for row in body] != list(range(MAX_SCORE + 1)):
        raise ConversionError(f"{draft.id}: look-up sheet must list scores 0-100 in order")
    lookup_labels = header[1:]
    if len(lookup_labels) != len(draft.lines):
        raise ConversionError(f"{draft.id}: scorecard and look-up sheets have different numbers of lines")
    for column, (line, lookup_label) in enumerate(zip(draft.lines, lookup_labels, strict=True), start=1):
        line["lookup"] = [float(row[column]) for row in body]
        if lookup_label != line["label"]:
            line["lookup_label"] = lookup_label


# ----------------------------------------------------------------------------------------------- Mifos tables


def convert_mifos(source: Path) -> list[Draft]:
    points = read_csv(source / "mifos" / "mifos_ppi_points.csv")
    likelihoods = read_csv(source / "mifos" / "mifos_ppi_likelihoods_long.csv")
    surveys = sorted({row["survey"] for row in points} | {row["survey"] for row in likelihoods})
    texts = bangladesh_texts(source)
    drafts = []
    for survey in surveys:
        draft = mifos_draft(survey)
        draft.questions = mifos_questions(draft, [row for row in points if row["survey"] == survey], texts)
        attach_mifos_likelihoods(draft, [row for row in likelihoods if row["survey"] == survey])
        finish(draft)
        drafts.append(draft)
    return drafts


def mifos_draft(survey: str) -> Draft:
    match = re.fullmatch(r"PPI (\w+) (\d{4})", survey)
    if not match:
        raise ConversionError(f"unexpected Mifos survey name {survey!r}")
    country, year = country_code(match.group(1)), int(match.group(2))
    extracts = ["mifos/mifos_ppi_points.csv", "mifos/mifos_ppi_likelihoods_long.csv"]
    if country == "BGD":
        extracts += ["mifos/bangladesh_2009_scorecard_joined.csv", "mifos/PPISurveyBANGLADESH2009.xml"]
    return Draft(
        id=f"{country}-{year}",
        country=country,
        year=year,
        title=f"PPI {country_name(country)} {year}",
        family="classic",
        provenance={
            "authors": "Mark Schreiner / Microfinance Risk Management and Grameen Foundation",
            "licence": "Apache-2.0 (Mifos)",
            "repository": MIFOS_REPOSITORY,
            "path": MIFOS_SQL_PATH,
            "sheets": {"survey": survey},
            "extracts": extracts,
            "year_meaning": "year in the Mifos survey name",
        },
    )


def bangladesh_texts(source: Path) -> dict[str, str]:
    """Question text by nickname from the Bangladesh 2009 file that joins the Mifos points with the XML."""
    rows = read_csv(source / "mifos" / "bangladesh_2009_scorecard_joined.csv")
    return {row["question_nickname"]: row["question_text"] for row in rows}


def mifos_questions(draft: Draft, rows: list[dict[str, str]], texts: dict[str, str]) -> list[dict[str, Any]]:
    questions: list[dict[str, Any]] = []
    for row in rows:
        number = int(row["question_no"])
        if not questions or questions[-1]["number"] != number:
            if number != len(questions) + 1:
                raise ConversionError(f"{draft.id}: question numbers not consecutive at {number}")
            nickname = row["question_nickname"]
            questions.append({"number": number, "text": texts.get(nickname), "nickname": nickname, "answers": []})
        question = questions[-1]
        answer: dict[str, Any] = {"text": row["answer"], "letter": None, "points": int(row["points"] or 0)}
        if not row["points"].strip():
            answer["blank_points_in_source"] = ["points"]
        question["answers"].append(answer)
    if draft.country == "BGD":
        draft.decide(
            "merged-sources",
            "questions[*].text",
            "question text taken from bangladesh_2009_scorecard_joined.csv; points from mifos_ppi_points.csv",
            "both describe the same Mifos survey 'PPI Bangladesh 2009', so one id BGD-2009 rather than a suffix",
        )
    return questions


def attach_mifos_likelihoods(draft: Draft, rows: list[dict[str, str]]) -> None:
    by_line: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_line.setdefault(row["poverty_line"], []).append(row)
    if not by_line:
        return
    bands = band_list(next(iter(by_line.values())))
    draft.likelihood_bands = bands
    for label, line_rows in by_line.items():
        if band_list(line_rows) != bands:
            raise ConversionError(f"{draft.id}: line {label} has different score bands")
        values = [fraction_from_percent(row["likelihood_pct"]) for row in line_rows]
        draft.lines.append({"slug": slugify(label), "label": label, "band_likelihoods": values})


def band_list(rows: list[dict[str, str]]) -> list[list[int]]:
    return [[int(row["score_from"]), int(row["score_to"])] for row in rows]


# -------------------------------------------------------------------------------------------------- India XML


def convert_india_xml(source: Path) -> Draft:
    root = ET.parse(source / "mifos" / "PPISurveyINDIA.xml").getroot()
    draft = Draft(
        id="IND-GF",
        country="IND",
        year=None,
        title=f"Grameen Foundation {root.get('name', 'PPI Survey India')}",
        family="classic",
        provenance={
            "authors": "Grameen Foundation",
            "licence": "Apache-2.0 (Mifos)",
            "repository": MIFOS_REPOSITORY,
            "path": "PPISurveyINDIA.xml",
            "sheets": {"survey": root.get("name", "")},
            "extracts": ["mifos/PPISurveyINDIA.xml", "mifos/india_xml_likelihoods.csv"],
            "year_meaning": "the XML carries no year; id IND-GF (Grameen Foundation) keeps it apart from IND-2008",
        },
    )
    for number, element in enumerate(sorted(root.iter("question"), key=lambda q: int(q.get("order", "0"))), 1):
        answers = [
            {"text": (choice.text or "").strip(), "letter": None, "points": int(choice.get("points", "0"))}
            for choice in element.iter("choice")
        ]
        text = (element.findtext("text") or "").strip()
        draft.questions.append({"number": number, "text": text, "nickname": element.get("name"), "answers": answers})
    attach_india_likelihoods(draft, read_csv(source / "mifos" / "india_xml_likelihoods.csv"))
    finish(draft)
    return draft


def attach_india_likelihoods(draft: Draft, rows: list[dict[str, str]]) -> None:
    draft.likelihood_bands = band_list(rows)
    for row in rows:
        columns = ("bottom_half_below_line", "top_half_below_line", "non_poor_derived")
        shares = sum((Decimal(row[column]) for column in columns), Decimal(0))
        if abs(shares - 100) > Decimal("0.05"):
            raise ConversionError(f"IND-GF band {row['score_from']}-{row['score_to']}: shares add up to {shares}")
    very_poor = [Decimal(row["bottom_half_below_line"]) for row in rows]
    poor_not_very = [Decimal(row["top_half_below_line"]) for row in rows]
    draft.lines = [
        {
            "slug": "very-poor",
            "label": "bottom_half_below_line",
            "derived_from": ["bottom_half_below_line"],
            "band_likelihoods": [float(v / 100) for v in very_poor],
        },
        {
            "slug": "poor",
            "label": "bottom_half_below_line + top_half_below_line",
            "derived_from": ["bottom_half_below_line", "top_half_below_line"],
            "band_likelihoods": [float((v + p) / 100) for v, p in zip(very_poor, poor_not_very, strict=True)],
        },
    ]
    draft.decide(
        "derived-lines",
        "poverty_lines",
        "line 'very-poor' = bottom-half share; line 'poor' = bottom-half + top-half share (below the line at all); "
        "non-poor = 1 - poor, not stored",
        "every stored line means 'likelihood of being below this line', so the portfolio rate is a mean for each",
    )


# -------------------------------------------------------------------------------------------- shared finishing


def finish(draft: Draft) -> None:
    """Detect language and write a decision for every fault found in the converted data."""
    texts = [q["text"] or "" for q in draft.questions] + [a["text"] for q in draft.questions for a in q["answers"]]
    draft.language, draft.language_evidence = detect_language(texts)
    for finding in checks.check_document(draft.to_json()):
        decision = DECISIONS.get(finding.code)
        if decision is not None:
            draft.decide(finding.code, finding.field, decision[0], decision[1])


# What the converter does about each fault the checks can find (fault code -> decision, reason).
DECISIONS: dict[str, tuple[str, str]] = {
    checks.POINTS_SUM: (
        "kept as published; a score above 100 is capped at 100 for look-up and reporting",
        "rounding in the published points; the look-up tables stop at 100",
    ),
    checks.BLANK_POINTS: ("blank point cell read as 0 points", "a blank cell in the workbook scores nothing"),
    checks.DUPLICATE_LETTER: (
        "both answers kept in published order; answers are chosen by position, not by letter",
        "dropping or relabelling one would change the published scorecard",
    ),
    checks.NON_MONOTONE: (
        "kept as published",
        "classic likelihood tables were published non-monotone (sampling noise); smoothing would be a guess",
    ),
    checks.LIKELY_TYPO: (
        "kept as published, flagged for review",
        "looks like a typing error (a jump of 45+ points against both neighbours), but the right value is unknown",
    ),
    checks.LABEL_MISMATCH: (
        "label from the scorecard sheet kept as `label`; the look-up sheet's label kept as `lookup_label`; "
        "columns paired by position",
        "the two sheets of the same workbook name the same column differently",
    ),
    checks.ENCODING_DAMAGE: (
        "text kept verbatim; correct it with a translation overlay rather than by guessing here",
        "characters were lost ('?') before the data reached us",
    ),
    checks.LITERAL_NONE: (
        "answer text 'None' kept as a real answer",
        "it is the published wording (e.g. 'no members'), not a missing value",
    ),
    checks.NO_POINTS: (
        "shipped with its likelihood table and no questions; not scoreable",
        "the source has likelihoods but no points; kept so the table is not lost",
    ),
    checks.NO_LIKELIHOODS: (
        "shipped with points and no poverty lines; scoring gives the total score only",
        "the source has no likelihood table for this survey",
    ),
}


def write_scorecards(drafts: list[Draft], target: Path) -> list[Path]:
    ids = Counter(draft.id for draft in drafts)
    clashes = sorted(i for i, n in ids.items() if n > 1)
    if clashes:
        raise ConversionError(f"two sources give the same id: {clashes}; add a suffix in the converter")
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for draft in sorted(drafts, key=lambda d: d.id):
        path = target / f"{draft.id}.json"
        path.write_text(json.dumps(draft.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written


def convert_all(source: Path) -> list[Draft]:
    return convert_ipa(source) + convert_mifos(source) + [convert_india_xml(source)]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m scoring.convert SOURCE_DIR TARGET_DIR", file=sys.stderr)
        return 2
    written = write_scorecards(convert_all(Path(args[0])), Path(args[1]))
    print(f"wrote {len(written)} scorecards to {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
