"""Row rules for each import kind: which columns exist, which are required, and what a valid row looks like.

Pure: the rows arrive parsed by `reader.py` and the ids already in the database arrive in a `Context`, so every
rule is testable without a database. A valid row becomes a `Record` holding only the columns the file has (a
column left out of the file leaves the stored value alone, and a new row gets its default); an invalid one becomes
`RowError`s naming the column.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from importer.cells import Cells, RowError, normalise_phone
from importer.reader import RawRow

KINDS: dict[str, tuple[str, ...]] = {
    "offices": ("external_id", "name", "level", "parent_external_id", "country_code", "default_language"),
    "staff": ("external_id", "name", "office_external_id", "phone", "role", "language"),
    "clients": (
        "external_id",
        "name",
        "office_external_id",
        "officer_external_id",
        "phones",
        "language",
        "activated_on",
    ),
    "accounts": (
        "external_id",
        "client_external_id",
        "kind",
        "product_external_id",
        "product_name",
        "fund_external_id",
        "fund_name",
        "currency",
        "opened_on",
        "principal",
        "balance",
        "next_due_date",
        "next_due_amount",
        "arrears",
        "status",
    ),
    "transactions": ("external_id", "account_external_id", "occurred_on", "kind", "amount", "balance_after"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "offices": ("external_id", "name", "level"),
    "staff": ("external_id", "name", "office_external_id"),
    "clients": ("external_id", "name", "office_external_id"),
    "accounts": ("external_id", "client_external_id", "kind", "balance"),
    "transactions": ("external_id", "account_external_id", "occurred_on", "kind", "amount"),
}
ROLES = ("loan_officer", "supervisor", "branch_manager", "admin")
ACCOUNT_KINDS = ("loan", "savings")
ACCOUNT_STATUSES = ("active", "pending", "closed", "written_off", "dormant")
TRANSACTION_KINDS = {
    "loan": ("disbursement", "repayment", "fee", "interest", "penalty", "write_off"),
    "savings": ("deposit", "withdrawal", "fee", "interest"),
}
ZERO = Decimal("0")
POSITIVE = Decimal("0.01")


@dataclass
class Context:
    """What the rules need to know about the database: external ids that exist, and a few of their attributes."""

    default_region: str
    default_currency: str
    offices: Container[str] = field(default_factory=set)
    staff: Container[str] = field(default_factory=set)
    clients: Container[str] = field(default_factory=set)
    account_kinds: Mapping[str, str] = field(default_factory=dict)  # account external id -> loan | savings
    products: Container[str] = field(default_factory=set)
    funds: Container[str] = field(default_factory=set)
    staff_phones: Mapping[str, str] = field(default_factory=dict)  # E.164 -> staff external id


@dataclass(frozen=True)
class Record:
    row: int
    external_id: str
    values: dict[str, object]  # model attribute -> clean value, only for columns in the file
    refs: dict[str, str | None] = field(default_factory=dict)  # "office", "officer", "parent", ... -> external id
    defaults: dict[str, object] = field(default_factory=dict)  # model attribute -> value for a new row, if left out


@dataclass
class _Seen:
    """Ids defined earlier in the same file, so duplicates and forward references are caught."""

    rows: dict[str, int] = field(default_factory=dict)
    offices: set[str] = field(default_factory=set)
    products: set[str] = field(default_factory=set)
    funds: set[str] = field(default_factory=set)
    phones: dict[str, str] = field(default_factory=dict)
    # Staff file: each staff id's phone cell as this file sets it (None: cleared or not a number), and the rows that
    # take a phone a stored staff member gives up in this same file (a handover) -> that staff member's id.
    phone_moves: dict[str, str | None] = field(default_factory=dict)
    handovers: dict[int, str] = field(default_factory=dict)


def validate_all(kind: str, rows: Sequence[RawRow], context: Context) -> tuple[list[Record], list[RowError]]:
    """Check every row; return the valid records (in file order) and the errors of the others."""
    rule = _RULES[kind]
    seen = _Seen(phone_moves=_phone_moves(rows, context) if kind == "staff" else {})
    records: list[Record] = []
    errors: list[RowError] = []
    for raw in rows:
        if raw.width_problem:  # the cells are misaligned: their own errors would only be noise
            errors.append(RowError(raw.number, None, raw.width_problem))
            continue
        cells = Cells(raw.number, raw.cells)
        external_id = cells.identifier("external_id", required=True)
        _check_duplicate(cells, external_id, seen)
        record = rule(cells, external_id or "", context, seen)
        if cells.errors or record is None:
            errors.extend(cells.errors)
            continue
        _remember(kind, record, seen)
        records.append(record)
    return _refuse_failed_handovers(records, errors, seen)


def _phone_moves(rows: Sequence[RawRow], context: Context) -> dict[str, str | None]:
    """Staff id -> the phone its row sets, for rows with a phone column: read ahead, so a phone moving from one
    officer to another is accepted whichever of the two rows comes first."""
    moves: dict[str, str | None] = {}
    for raw in rows:
        external_id = Cells(raw.number, raw.cells).identifier("external_id")  # as the row's own pass reads it
        if not raw.width_problem and "phone" in raw.cells and external_id and external_id not in moves:
            moves[external_id] = (
                normalise_phone(raw.cells["phone"], context.default_region) if raw.cells["phone"] else None
            )
    return moves


def _refuse_failed_handovers(
    records: list[Record], errors: list[RowError], seen: _Seen
) -> tuple[list[Record], list[RowError]]:
    """A row that takes over a phone is refused when the row giving it up was itself refused: the phone stays."""
    imported = {record.external_id for record in records}
    kept = []
    for record in records:
        holder = seen.handovers.get(record.row)
        if holder is not None and holder not in imported:
            errors.append(RowError(record.row, "phone", f"already belongs to staff {holder} (whose row has errors)"))
        else:
            kept.append(record)
    return kept, errors


def _check_duplicate(cells: Cells, external_id: str | None, seen: _Seen) -> None:
    """Remember the first row of each id, valid or not: any later row with the same id is the duplicate."""
    if external_id is None:
        return
    first = seen.rows.setdefault(external_id, cells.row)
    if first != cells.row:
        cells.error("external_id", f"{external_id} already appears in row {first}")


def _remember(kind: str, record: Record, seen: _Seen) -> None:
    if kind == "offices":
        seen.offices.add(record.external_id)
    elif kind == "staff" and record.values.get("phone"):
        seen.phones[str(record.values["phone"])] = record.external_id
    elif kind == "accounts":
        if record.refs.get("product") and record.values.get("product_name"):
            seen.products.add(str(record.refs["product"]))
        if record.refs.get("fund") and record.values.get("fund_name"):
            seen.funds.add(str(record.refs["fund"]))


def _present(cells: Cells, values: dict[str, object]) -> dict[str, object]:
    """Keep only values whose column is in the file; a missing column must not blank a stored value."""
    return {name: value for name, value in values.items() if cells.has(name)}


def _reference(cells: Cells, column: str, known: Callable[[str], bool], what: str, *, required: bool) -> str | None:
    external_id = cells.identifier(column, required=required)
    if external_id is not None and not known(external_id):
        cells.error(column, f"unknown {what} {external_id}")
    return external_id


def _office_row(cells: Cells, external_id: str, context: Context, seen: _Seen) -> Record | None:
    name = cells.text("name", required=True)
    level = cells.text("level", required=True, max_length=32)
    parent = _reference(
        cells,
        "parent_external_id",
        lambda ref: ref in context.offices or ref in seen.offices,
        "parent office (parents must come first or already exist)",
        required=False,
    )
    if parent is not None and parent == external_id:
        cells.error("parent_external_id", "an office cannot be its own parent")
    values: dict[str, object] = {"name": name, "level": "_".join((level or "").lower().split())}
    values |= _present(
        cells, {"country_code": cells.country("country_code"), "default_language": cells.language("default_language")}
    )
    refs = {"parent": parent} if cells.has("parent_external_id") else {}
    return Record(cells.row, external_id, values, refs)


def _staff_row(cells: Cells, external_id: str, context: Context, seen: _Seen) -> Record | None:
    name = cells.text("name", required=True)
    office = _reference(cells, "office_external_id", context.offices.__contains__, "office", required=True)
    phone = cells.phone("phone", context.default_region) if cells.raw.get("phone") else None
    if phone is not None:
        earlier, stored = seen.phones.get(phone), context.staff_phones.get(phone)
        if earlier is not None and earlier != external_id:
            cells.error("phone", f"already belongs to staff {earlier}")
        elif stored is not None and stored != external_id:
            if seen.phone_moves.get(stored, phone) == phone:
                cells.error("phone", f"already belongs to staff {stored}")
            else:  # the stored holder's own row in this file moves them to another phone or none
                seen.handovers[cells.row] = stored
    values: dict[str, object] = {"name": name}
    values |= _present(cells, {"phone": phone, "language": cells.language("language")})
    if cells.has("role"):
        values["role"] = cells.choice("role", ROLES, default="loan_officer")
    return Record(cells.row, external_id, values, {"office": office})


def _client_row(cells: Cells, external_id: str, context: Context, seen: _Seen) -> Record | None:
    name = cells.text("name", required=True)
    office = _reference(cells, "office_external_id", context.offices.__contains__, "office", required=True)
    officer = _reference(cells, "officer_external_id", context.staff.__contains__, "officer", required=False)
    values: dict[str, object] = {"name": name}
    values |= _present(cells, {"language": cells.language("language"), "activated_on": cells.iso_date("activated_on")})
    if cells.has("phones"):
        values["phones"] = _phones(cells, context.default_region)
    refs: dict[str, str | None] = {"office": office}
    if cells.has("officer_external_id"):
        refs["officer"] = officer
    return Record(cells.row, external_id, values, refs)


def _phones(cells: Cells, region: str) -> tuple[str, ...]:
    found: list[str] = []
    for part in cells.raw.get("phones", "").split(";"):
        if part.strip():
            phone = cells.phone("phones", region, value=part)
            if phone is not None and phone not in found:
                found.append(phone)
    return tuple(found)


def _account_row(cells: Cells, external_id: str, context: Context, seen: _Seen) -> Record | None:
    client = _reference(cells, "client_external_id", context.clients.__contains__, "client", required=True)
    kind = cells.choice("kind", ACCOUNT_KINDS)
    values: dict[str, object] = {"kind": kind, "balance": cells.amount("balance", required=True)}
    values |= _present(
        cells,
        {
            "currency": cells.currency("currency", default=context.default_currency),
            "opened_on": cells.iso_date("opened_on"),
            "principal": cells.amount("principal", minimum=POSITIVE),
            "next_due_date": cells.iso_date("next_due_date"),
            "next_due_amount": cells.amount("next_due_amount", minimum=ZERO),
            "arrears": cells.amount("arrears", minimum=ZERO) or ZERO,
        },
    )
    if cells.has("status"):
        values["status"] = cells.choice("status", ACCOUNT_STATUSES, default="active")
    refs: dict[str, str | None] = {"client": client}
    for what, known, done in (("product", context.products, seen.products), ("fund", context.funds, seen.funds)):
        ref, label = _named_reference(cells, what, known, done)
        if cells.has(f"{what}_external_id"):
            refs[what] = ref
        if label is not None:
            values[f"{what}_name"] = label
    return Record(cells.row, external_id, values, refs, defaults={"currency": context.default_currency})


def _named_reference(
    cells: Cells, what: str, known: Container[str], defined_earlier: Container[str]
) -> tuple[str | None, str | None]:
    """A product or fund: an existing external id, or a new one together with its name (upserted)."""
    external_id = cells.identifier(f"{what}_external_id")
    name = cells.text(f"{what}_name")
    if external_id is None and name is not None:
        cells.error(f"{what}_external_id", f"is required when {what}_name is given")
    elif external_id is not None and name is None and external_id not in known and external_id not in defined_earlier:
        cells.error(f"{what}_external_id", f"unknown {what} {external_id}; give {what}_name to create it")
    return external_id, name


def _transaction_row(cells: Cells, external_id: str, context: Context, seen: _Seen) -> Record | None:
    account = _reference(cells, "account_external_id", context.account_kinds.__contains__, "account", required=True)
    account_kind = context.account_kinds.get(account or "")
    allowed = TRANSACTION_KINDS.get(account_kind or "", TRANSACTION_KINDS["loan"] + TRANSACTION_KINDS["savings"])
    values: dict[str, object] = {
        "occurred_on": cells.iso_date("occurred_on", required=True),
        "kind": cells.choice("kind", dict.fromkeys(allowed)),
        "amount": cells.amount("amount", required=True, minimum=POSITIVE),
    }
    values |= _present(cells, {"balance_after": cells.amount("balance_after")})
    return Record(cells.row, external_id, values, {"account": account})


_RULES: dict[str, Callable[[Cells, str, Context, _Seen], Record | None]] = {
    "offices": _office_row,
    "staff": _staff_row,
    "clients": _client_row,
    "accounts": _account_row,
    "transactions": _transaction_row,
}
