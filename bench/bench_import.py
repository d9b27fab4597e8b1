"""Benchmark: importing 100,000 clients from CSV into a fresh SQLite database (target: under 60 s).

Run: .venv/bin/python bench/bench_import.py [--clients 100000]
Generates the offices, staff and clients files in a temporary folder, loads offices and staff untimed, then times
the clients file exactly as `impact-connect import clients FILE` runs it (decode, parse, validate, write), and
times a second run of the same file, which must report every row unchanged.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bootstrap  # noqa: E402
import migrate  # noqa: E402
from importer.reader import decode, read_table  # noqa: E402
from importer.rows import KINDS, REQUIRED  # noqa: E402
from importer.service import ImportReport, import_table  # noqa: E402
from settings import Settings  # noqa: E402

BRANCHES = 20
GROUPS_PER_BRANCH = 10


def write_files(folder: Path, clients: int) -> dict[str, Path]:
    offices = ["external_id,name,level,parent_external_id,country_code", "KE,Kenya,country,,KE"]
    staff = ["external_id,name,office_external_id,phone,role"]
    for b in range(1, BRANCHES + 1):
        offices.append(f"B{b},Branch {b},branch,KE,KE")
        staff.append(f"S{b},Officer {b},B{b},+2547110{b:05d},loan_officer")
        offices.extend(f"B{b}-G{g},Group {b}.{g},group,B{b},KE" for g in range(1, GROUPS_PER_BRANCH + 1))
    rows = ["external_id,name,office_external_id,officer_external_id,phones,language,activated_on"]
    for n in range(1, clients + 1):
        b, g = n % BRANCHES + 1, n % GROUPS_PER_BRANCH + 1
        phones = f"07{n % 100_000_000:08d}" + (f";+2541{n % 100_000_000:08d}" if n % 10 == 0 else "")
        rows.append(f"C{n:06d},Client {n},B{b}-G{g},S{b},{phones},{'sw' if n % 2 else 'en'},2024-{n % 12 + 1:02d}-15")
    paths = {}
    for kind, lines in (("offices", offices), ("staff", staff), ("clients", rows)):
        paths[kind] = folder / f"{kind}.csv"
        paths[kind].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def run(services: bootstrap.Services, kind: str, path: Path) -> ImportReport:
    table = read_table(
        decode(path.read_bytes(), name=str(path)), name=str(path), columns=KINDS[kind], required=REQUIRED[kind]
    )
    return import_table(services, kind, table, default_region="KE")


def timed(services: bootstrap.Services, kind: str, path: Path) -> tuple[float, ImportReport]:
    started = time.perf_counter()
    report = run(services, kind, path)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100_000)
    count = parser.parse_args().clients
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(app_env="test", database_url=f"sqlite:///{folder}/bench.sqlite", log_level="WARNING")
        migrate.upgrade(settings)
        services = bootstrap.build(settings)
        paths = write_files(Path(folder), count)
        for kind in ("offices", "staff"):
            run(services, kind, paths[kind])
        for label in ("first import", "re-import"):
            seconds, report = timed(services, "clients", paths["clients"])
            print(f"{label}: {count:,} clients in {seconds:.1f} s ({count / seconds:,.0f} rows/s) - {report.summary()}")
            if report.errors:
                print(f"  first error: {report.errors[0]}")


if __name__ == "__main__":
    main()
