"""Turn the bytes of an uploaded CSV file into a header and numbered rows, or one clear file-level error.

Kept apart from the row rules (`rows.py`) and the database (`service.py`) so the awkward parts of real files — a
UTF-8 byte-order mark from Excel, a Latin-1 export, a semicolon-separated file, a stray quote — are handled in one
place with no IO beyond the bytes handed in. Row numbers are spreadsheet rows: the header is row 1.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field


class FileError(ValueError):
    """The file as a whole cannot be imported; the message is one line naming the file."""


@dataclass(frozen=True)
class RawRow:
    number: int  # spreadsheet row number; the header is row 1
    cells: dict[str, str]  # column -> stripped text ("" when empty)
    width_problem: str | None = None  # e.g. "has 8 fields, the header has 6"


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: list[RawRow]
    ignored_columns: tuple[str, ...] = field(default=())


def decode(data: bytes, *, name: str, encoding: str | None = None) -> str:
    """Decode as UTF-8 (with or without a BOM), or with the encoding the user chose (UTF-8 too may have a BOM)."""
    if encoding:
        try:
            return data.decode(_codec(encoding))
        except LookupError:
            raise FileError(f"unknown encoding {encoding!r}") from None
        except UnicodeDecodeError as exc:
            byte = data[exc.start]
            raise FileError(f"{name} is not {encoding} (byte 0x{byte:02x} at position {exc.start})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(
            f"{name} is not UTF-8 (byte 0x{data[exc.start]:02x} at position {exc.start}); "
            "re-save as UTF-8 or pass --encoding latin-1"
        ) from None


def _codec(encoding: str) -> str:
    """The codec for a chosen encoding: any spelling of UTF-8 drops Excel's byte-order mark, as by default."""
    return "utf-8-sig" if codecs.lookup(encoding).name == "utf-8" else encoding


def read_table(text: str, *, name: str, columns: Sequence[str], required: Sequence[str]) -> Table:
    """Parse CSV text; refuse the file when the header lacks a required column or the quoting is broken."""
    records = _parse(text, name)
    if not records or not any(cell.strip() for cell in records[0]):
        raise FileError(f"{name} is empty (no header row)")
    header = tuple(_column_name(cell) for cell in records[0])
    _check_header(header, name=name, required=required)
    known = set(columns)
    rows = [_raw_row(index + 1, header, record) for index, record in enumerate(records) if index > 0 and record]
    rows = [row for row in rows if row.width_problem or any(row.cells.values())]
    ignored = tuple(column for column in header if column and column not in known)
    return Table(header=header, rows=rows, ignored_columns=ignored)


def _parse(text: str, name: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        return list(reader)
    except csv.Error as exc:
        raise FileError(f"{name} is not valid CSV (line {reader.line_num}: {exc})") from None


def _column_name(cell: str) -> str:
    return "_".join(cell.strip().lower().split())


def _check_header(header: tuple[str, ...], *, name: str, required: Sequence[str]) -> None:
    if len(header) == 1 and ";" in header[0]:
        raise FileError(f"{name} looks semicolon-separated; save it as comma-separated CSV")
    duplicates = sorted({column for column in header if column and header.count(column) > 1})
    if duplicates:
        raise FileError(f"{name} repeats columns: {', '.join(duplicates)}")
    missing = [column for column in required if column not in header]
    if missing:
        raise FileError(f"{name} is missing required columns: {', '.join(missing)}")


def _raw_row(number: int, header: tuple[str, ...], record: list[str]) -> RawRow:
    problem = None
    if len(record) != len(header) and any(cell.strip() for cell in record[len(header) :]):
        problem = f"has {len(record)} fields, the header has {len(header)}"
    elif len(record) < len(header):
        problem = f"has {len(record)} fields, the header has {len(header)}"
    cells = {column: cell.strip() for column, cell in zip(header, record, strict=False) if column}
    return RawRow(number=number, cells=cells, width_problem=problem)
