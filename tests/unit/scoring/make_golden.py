"""Write golden_cases.json: answer sets with expected scores and likelihoods, read straight from the raw
source CSVs in ../shared/ppi. Deliberately independent of `scoring` (no converter, no loader):

    .venv/bin/python tests/unit/scoring/make_golden.py ../shared/ppi

Rules applied by hand, the same ones the scorecard files document in their `decisions`:
- an answer is its 1-based row position inside its question, in file order;
- a blank point cell counts 0;
- a line's score is the sum of the chosen rows' points, capped at 100;
- IPA likelihood = look-up row `score`, column of the same position; classic likelihood = the band
  score_from <= score <= score_to, percent / 100;
- India XML (IND-GF): line 1 = bottom_half_below_line, line 2 = bottom_half + top_half (below the line at all).
"""

from __future__ import annotations

import csv
import json
import random
import sys
from pathlib import Path

IPA = {
    "KEN-2024": ("kenya2024__scorecard__Scorecard_10Q.csv", "kenya2024__lookup__Look_up_Tables_10Q.csv"),
    "PHL-2023": ("philippines2023__scorecard__Scorecard.csv", "philippines2023__lookup__Look_up_Table.csv"),
    "MEX-2024": (
        "mexico2024__scorecard__Tarjeta_de_Puntuacion_10Q.csv",
        "mexico2024__lookup__Tarjeta_de_Probabilidades_10Q.csv",
    ),
    "GHA-2019": ("ghana2019__scorecard__Scorecard.csv", "ghana2019__lookup__Look_up_Tables.csv"),
    "BOL-2023": ("bolivia2023__scorecard__Scorecard.csv", "bolivia2023__lookup__Look_up_Table.csv"),
    "KHM-2023": ("cambodia2023__scorecard__Scorecard.csv", "cambodia2023__lookup__Look_up_Tables.csv"),
    "IDN-2020": ("indonesia2020__scorecard__Scorecard.csv", "indonesia2020__lookup__Look_up_Tables.csv"),
    "BEN-2022-6Q": ("benin2022__scorecard__Scorecard_6Q.csv", "benin2022__lookup__Look_up_Tables_6Q.csv"),
    "ETH-2023": ("ethiopia2023__scorecard__Scorecard.csv", "ethiopia2023__lookup__Look_up_Tables.csv"),
}
CLASSIC = {
    "PAK-2009": "PPI Pakistan 2009",
    "HTI-2006": "PPI Haiti 2006",
    "IND-2008": "PPI India 2008",
    "ECU-2008": "PPI Ecuador 2008",
    "PHL-2009": "PPI Philippines 2009",
    "BGD-2009": "PPI Bangladesh 2009",
    "KEN-2008": "PPI Kenya 2008",
}
CASES_PER_SCORECARD = 15


def rows_of(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def answer_sets(question_sizes: list[int], rng: random.Random) -> list[list[int]]:
    sets = [[1] * len(question_sizes), list(question_sizes)]
    while len(sets) < CASES_PER_SCORECARD:
        sets.append([rng.randint(1, size) for size in question_sizes])
    return sets


def ipa_cases(source: Path, scorecard_id: str, rng: random.Random) -> list[dict[str, object]]:
    card_file, lookup_file = IPA[scorecard_id]
    card = rows_of(source / "ipa" / card_file)
    lookup = rows_of(source / "ipa" / lookup_file)
    labels = card[0][4:]
    questions: dict[str, list[list[str]]] = {}
    for row in card[1:]:
        questions.setdefault(row[0], []).append(row[4:])
    cases = []
    for answers in answer_sets([len(rows) for rows in questions.values()], rng):
        chosen = [rows[a - 1] for rows, a in zip(questions.values(), answers, strict=True)]
        lines = []
        for column, label in enumerate(labels):
            score = min(100, sum(int(row[column]) if row[column].strip() else 0 for row in chosen))
            likelihood = float(lookup[1 + score][1 + column])
            lines.append({"label": label, "score": score, "likelihood": likelihood})
        cases.append({"scorecard": scorecard_id, "answers": answers, "lines": lines, "total": None})
    return cases


def classic_cases(source: Path, scorecard_id: str, rng: random.Random) -> list[dict[str, object]]:
    survey = CLASSIC[scorecard_id]
    with (source / "mifos" / "mifos_ppi_points.csv").open(encoding="utf-8", newline="") as handle:
        points = [row for row in csv.DictReader(handle) if row["survey"] == survey]
    with (source / "mifos" / "mifos_ppi_likelihoods_long.csv").open(encoding="utf-8", newline="") as handle:
        bands = [row for row in csv.DictReader(handle) if row["survey"] == survey]
    questions: dict[str, list[int]] = {}
    for row in points:
        questions.setdefault(row["question_no"], []).append(int(row["points"] or 0))
    labels = list(dict.fromkeys(row["poverty_line"] for row in bands))
    return [
        classic_case(scorecard_id, answers, questions, labels, bands)
        for answers in answer_sets([len(p) for p in questions.values()], rng)
    ]


def classic_case(
    scorecard_id: str,
    answers: list[int],
    questions: dict[str, list[int]],
    labels: list[str],
    bands: list[dict[str, str]],
) -> dict[str, object]:
    score = min(100, sum(p[a - 1] for p, a in zip(questions.values(), answers, strict=True)))
    lines = []
    for label in labels:
        band = next(
            row
            for row in bands
            if row["poverty_line"] == label and int(row["score_from"]) <= score <= int(row["score_to"])
        )
        lines.append({"label": label, "score": score, "likelihood": float(band["likelihood_pct"]) / 100})
    return {"scorecard": scorecard_id, "answers": answers, "lines": lines, "total": score}


def india_xml_cases(source: Path, rng: random.Random) -> list[dict[str, object]]:
    with (source / "mifos" / "india_xml_scorecard.csv").open(encoding="utf-8", newline="") as handle:
        points = list(csv.DictReader(handle))
    with (source / "mifos" / "india_xml_likelihoods.csv").open(encoding="utf-8", newline="") as handle:
        bands = list(csv.DictReader(handle))
    questions: dict[str, list[int]] = {}
    for row in points:
        questions.setdefault(row["order"], []).append(int(row["points"]))
    cases = []
    for answers in answer_sets([len(p) for p in questions.values()], rng):
        score = min(100, sum(p[a - 1] for p, a in zip(questions.values(), answers, strict=True)))
        band = next(row for row in bands if int(row["score_from"]) <= score <= int(row["score_to"]))
        very_poor = float(band["bottom_half_below_line"]) / 100
        poor = (float(band["bottom_half_below_line"]) + float(band["top_half_below_line"])) / 100
        lines = [
            {"label": "bottom_half_below_line", "score": score, "likelihood": very_poor},
            {"label": "bottom_half_below_line + top_half_below_line", "score": score, "likelihood": poor},
        ]
        cases.append({"scorecard": "IND-GF", "answers": answers, "lines": lines, "total": score})
    return cases


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[3].parent / "shared" / "ppi"
    rng = random.Random(20240601)
    cases = []
    for scorecard_id in IPA:
        cases += ipa_cases(source, scorecard_id, rng)
    for scorecard_id in CLASSIC:
        cases += classic_cases(source, scorecard_id, rng)
    cases += india_xml_cases(source, rng)
    target = Path(__file__).with_name("golden_cases.json")
    target.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(cases)} cases over {len({c['scorecard'] for c in cases})} scorecards to {target}")


if __name__ == "__main__":
    main()
