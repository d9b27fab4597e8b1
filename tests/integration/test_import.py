"""`impact-connect import`: sample files load, bad rows are reported by row and column without stopping the good
ones, re-imports change nothing, and broken files fail with one line and no writes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from flask.cli import ScriptInfo
from sqlalchemy import func, select

from accounts.models import Account, Client, ClientPhone, Fund, LoanProduct, Office, Staff, Transaction
from app import create_app
from importer.cells import normalise_phone
from importer.cli import import_command
from settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KINDS = ("offices", "staff", "clients", "accounts", "transactions")


def run_import(runner, kind: str, path: Path, *options: str):
    return runner.invoke(import_command, [kind, str(path), *options])


def write(tmp_path: Path, text: str, name: str = "file.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def count(services, model) -> int:
    with services.transaction() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def phones_of(services, external_id: str) -> set[str]:
    with services.transaction() as session:
        query = select(ClientPhone.phone).join(Client).where(Client.external_id == external_id)
        return set(session.scalars(query))


@pytest.fixture
def organisation(runner):
    """The example offices and staff, which client files refer to."""
    for kind in ("offices", "staff"):
        assert run_import(runner, kind, EXAMPLES / f"{kind}.csv").exit_code == 0


def test_every_sample_file_imports_cleanly_in_order(runner, services):
    expected = {"offices": 9, "staff": 3, "clients": 6, "accounts": 6, "transactions": 8}
    for kind in KINDS:
        result = run_import(runner, kind, EXAMPLES / f"{kind}.csv")
        assert result.exit_code == 0, result.output
        assert (
            result.stdout.strip()
            == f"imported {expected[kind]}, unchanged 0, failed 0 (new {expected[kind]}, updated 0)"
        )
    assert [count(services, model) for model in (Office, Staff, Client, Account, Transaction)] == [9, 3, 6, 6, 8]
    assert (count(services, LoanProduct), count(services, Fund)) == (2, 2)


def test_office_paths_follow_the_parent_chain(runner, services, organisation):
    with services.transaction() as session:
        offices = {o.external_id: o for o in session.scalars(select(Office))}
    group, center, branch = offices["EX-G-TUMAINI"], offices["EX-C-LURAMBI"], offices["EX-B-KAKAMEGA"]
    assert group.path == f"{center.path}{group.id}/"
    assert center.path == f"{branch.path}{center.id}/"
    assert offices["EX-KE"].path == f"/{offices['EX-KE'].id}/"


def test_rerunning_every_sample_file_changes_nothing(runner, services):
    for kind in KINDS:
        run_import(runner, kind, EXAMPLES / f"{kind}.csv")
    with services.transaction() as session:
        before = [(a.external_id, a.balance, a.product_id, a.fund_id) for a in session.scalars(select(Account))]
    for kind in KINDS:
        result = run_import(runner, kind, EXAMPLES / f"{kind}.csv")
        assert result.exit_code == 0
        assert result.stdout.startswith("imported 0, unchanged "), result.stdout
    with services.transaction() as session:
        after = [(a.external_id, a.balance, a.product_id, a.fund_id) for a in session.scalars(select(Account))]
    assert after == before
    assert count(services, ClientPhone) == 7


def test_phone_numbers_are_stored_in_e164_and_a_shared_phone_belongs_to_both_clients(runner, services, organisation):
    run_import(runner, "clients", EXAMPLES / "clients.csv")
    assert phones_of(services, "EX-C0002") == {"+254733200002", "+254110200002"}
    assert phones_of(services, "EX-C0003") == {"+254733200003"}
    assert phones_of(services, "EX-C0004") == phones_of(services, "EX-C0006") == {"+254733200004"}


def test_bad_rows_are_reported_by_row_and_column_and_good_rows_still_import(runner, services, organisation, tmp_path):
    path = write(
        tmp_path,
        "external_id,name,office_external_id,officer_external_id,phones,language,activated_on\n"
        "K1,Good One,EX-G-TUMAINI,EX-S01,0711000111,sw,2024-01-31\n"
        "K2,Bad Phone,EX-G-TUMAINI,EX-S01,12345,sw,2024-01-31\n"
        "K3,Bad Date,EX-G-TUMAINI,,0711000333,en,31/01/2024\n"
        "K4,Nowhere,NO-SUCH-OFFICE,NO-SUCH-OFFICER,0711000444,en,\n"
        "K1,Twice,EX-G-TUMAINI,,0711000555,en,\n"
        "K6,Good Two,EX-G-BIDII,,0711000666,xx-nonsense,\n"
        "K7,Good Three,EX-G-BIDII,,,,\n",
    )
    result = run_import(runner, "clients", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "row 3, column phones: not a valid phone number for KE",
        "row 4, column activated_on: is not a date in the form yyyy-mm-dd",
        "row 5, column office_external_id: unknown office NO-SUCH-OFFICE",
        "row 5, column officer_external_id: unknown officer NO-SUCH-OFFICER",
        "row 6, column external_id: K1 already appears in row 2",
        "row 7, column language: is not a language code (e.g. sw, en, fr)",
    ]
    assert result.stdout.strip() == "imported 2, unchanged 0, failed 5 (new 2, updated 0)"
    with services.transaction() as session:
        assert sorted(session.scalars(select(Client.external_id))) == ["K1", "K7"]
        assert session.scalar(select(Client.name).where(Client.external_id == "K1")) == "Good One"


def test_a_repeated_external_id_is_an_error_even_when_its_first_row_failed(runner, services, organisation, tmp_path):
    path = write(
        tmp_path,
        "external_id,name,office_external_id,phones\nK1,First,EX-G-TUMAINI,12345\nK1,Second,EX-G-TUMAINI,0711000111\n",
    )
    result = run_import(runner, "clients", path)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "row 2, column phones: not a valid phone number for KE",
        "row 3, column external_id: K1 already appears in row 2",
    ]
    assert count(services, Client) == 0


def test_bad_amounts_and_unknown_references_on_accounts(runner, services, organisation, tmp_path):
    run_import(runner, "clients", EXAMPLES / "clients.csv")
    path = write(
        tmp_path,
        "external_id,client_external_id,kind,product_external_id,balance,currency,principal\n"
        "A1,EX-C0001,loan,,1,500.00,KES,10000\n"
        "A2,EX-C0001,loan,,abc,KES,\n"
        "A3,EX-C0001,credit,,10,KES,\n"
        "A4,EX-C0001,loan,NEW-PRODUCT,10,KES,\n"
        "A5,EX-C0001,savings,,10,XYZ,-5\n"
        "A6,EX-C0002,loan,,2500.5,,10000\n",
    )
    result = run_import(runner, "accounts", path)
    assert result.stderr.splitlines() == [
        "row 2: has 8 fields, the header has 7",
        "row 3, column balance: is not an amount (digits with up to 2 decimals and a dot, e.g. 1500.50)",
        "row 4, column kind: must be one of loan, savings",
        "row 5, column product_external_id: unknown product NEW-PRODUCT; give product_name to create it",
        "row 6, column currency: is not an ISO 4217 currency code (e.g. KES)",
        "row 6, column principal: must be more than 0",
    ]
    with services.transaction() as session:
        account = session.scalars(select(Account)).one()
    assert (account.external_id, account.balance, account.currency) == ("A6", Decimal("2500.50"), "KES")


def test_an_accounts_file_without_currency_keeps_stored_currencies(runner, services, organisation, tmp_path):
    run_import(runner, "clients", EXAMPLES / "clients.csv")
    first = "external_id,client_external_id,kind,currency,balance\nU1,EX-C0001,loan,UGX,100\n"
    assert run_import(runner, "accounts", write(tmp_path, first, name="first.csv")).exit_code == 0
    again = "external_id,client_external_id,kind,balance\nU1,EX-C0001,loan,100\nU2,EX-C0001,savings,5\n"
    result = run_import(runner, "accounts", write(tmp_path, again, name="again.csv"))
    assert result.stdout.strip() == "imported 1, unchanged 1, failed 0 (new 1, updated 0)"
    with services.transaction() as session:
        currencies = {ext: currency for ext, currency in session.execute(select(Account.external_id, Account.currency))}
    assert currencies == {"U1": "UGX", "U2": services.settings.currency}  # a new account gets the default


def test_a_transaction_kind_must_fit_the_account(runner, services, tmp_path):
    for kind in ("offices", "staff", "clients", "accounts"):
        run_import(runner, kind, EXAMPLES / f"{kind}.csv")
    path = write(
        tmp_path,
        "external_id,account_external_id,occurred_on,kind,amount\n"
        "T1,EX-SV0001,2025-01-01,repayment,100\n"
        "T2,EX-SV0001,2025-01-01,deposit,0\n",
    )
    result = run_import(runner, "transactions", path)
    assert result.stderr.splitlines() == [
        "row 2, column kind: must be one of deposit, withdrawal, fee, interest",
        "row 3, column amount: must be more than 0",
    ]
    assert count(services, Transaction) == 0


def test_changing_a_client_updates_it_and_replaces_its_phones(runner, services, organisation, tmp_path):
    run_import(runner, "clients", EXAMPLES / "clients.csv")
    path = write(
        tmp_path,
        "external_id,name,office_external_id,phones\n"
        "EX-C0002,Wafula Barasa Jr,EX-G-TUMAINI,0733200002\n"
        "EX-C0003,Nafula Wekesa,EX-G-TUMAINI,254733200003\n",
    )
    result = run_import(runner, "clients", path)
    assert result.stdout.strip() == "imported 1, unchanged 1, failed 0 (new 0, updated 1)"
    assert phones_of(services, "EX-C0002") == {"+254733200002"}
    with services.transaction() as session:
        client = session.scalars(select(Client).where(Client.external_id == "EX-C0002")).one()
    assert client.name == "Wafula Barasa Jr"
    assert client.language == "sw"  # the file has no language column: the stored value stays


def test_moving_an_office_moves_its_whole_subtree(runner, services, organisation, tmp_path):
    path = write(
        tmp_path, "external_id,name,level,parent_external_id\nEX-C-LURAMBI,Lurambi Centre,center,EX-B-NAKURU\n"
    )
    assert run_import(runner, "offices", path).exit_code == 0
    with services.transaction() as session:
        offices = {o.external_id: o for o in session.scalars(select(Office))}
    assert offices["EX-C-LURAMBI"].path == f"{offices['EX-B-NAKURU'].path}{offices['EX-C-LURAMBI'].id}/"
    assert offices["EX-G-TUMAINI"].path == f"{offices['EX-C-LURAMBI'].path}{offices['EX-G-TUMAINI'].id}/"


def test_an_office_cannot_move_under_its_own_descendant(runner, services, organisation, tmp_path):
    path = write(tmp_path, "external_id,name,level,parent_external_id\nEX-R-WEST,Western Region,region,EX-G-TUMAINI\n")
    result = run_import(runner, "offices", path)
    assert result.exit_code == 1
    assert result.stderr.strip() == "row 2, column parent_external_id: would make the office its own ancestor"


def test_a_latin1_file_fails_with_one_line_and_imports_with_encoding_option(runner, services, organisation, tmp_path):
    text = "external_id,name,office_external_id\nL1,Jos\u00e9 Ren\u00e9,EX-G-TUMAINI\n"
    path = write(tmp_path, text, name="latin.csv", encoding="latin-1")
    result = run_import(runner, "clients", path)
    assert result.exit_code != 0
    assert result.stderr.strip() == (
        f"Error: {path} is not UTF-8 (byte 0xe9 at position 42); re-save as UTF-8 or pass --encoding latin-1"
    )
    assert count(services, Client) == 0
    assert run_import(runner, "clients", path, "--encoding", "latin-1").exit_code == 0
    with services.transaction() as session:
        assert session.scalar(select(Client.name)) == "Jos\u00e9 Ren\u00e9"


def test_a_utf8_file_with_excel_byte_order_mark_imports(runner, services, organisation, tmp_path):
    path = write(tmp_path, "\ufeffexternal_id,name,office_external_id\nB1,Zawadi,EX-G-TUMAINI\n")
    assert run_import(runner, "clients", path).exit_code == 0
    assert count(services, Client) == 1


@pytest.mark.parametrize("bom", ["\ufeff", ""], ids=["with-bom", "without-bom"])
def test_encoding_utf8_option_reads_a_file_with_or_without_byte_order_mark(
    runner, services, organisation, tmp_path, bom
):
    path = write(tmp_path, f"{bom}external_id,name,office_external_id\nB1,Zawadi,EX-G-TUMAINI\n")
    result = run_import(runner, "clients", path, "--encoding", "utf-8")
    assert result.exit_code == 0, result.output
    assert count(services, Client) == 1


def test_a_missing_file_is_one_line(runner, tmp_path):
    result = run_import(runner, "clients", tmp_path / "nope.csv")
    assert result.exit_code != 0
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope.csv'}: no such file"


def test_missing_required_columns_are_named(runner, services, tmp_path):
    result = run_import(runner, "clients", write(tmp_path, "external_id,phones\nX1,0711000111\n"))
    assert result.exit_code != 0
    assert result.stderr.strip().endswith("is missing required columns: name, office_external_id")
    assert count(services, Client) == 0


def test_malformed_csv_writes_nothing(runner, services, tmp_path):
    text = 'external_id,name,level\nO1,Fine,country\nO2,"Unterminated,country\n'
    result = run_import(runner, "offices", write(tmp_path, text))
    assert result.exit_code != 0
    assert "is not valid CSV" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert count(services, Office) == 0


def test_staff_phones_must_be_unique(runner, services, tmp_path):
    run_import(runner, "offices", EXAMPLES / "offices.csv")
    text = (
        "external_id,name,office_external_id,phone\n"
        "X1,One,EX-KE,0722000001\nX2,Two,EX-KE,+254722000001\nX3,Three,EX-KE,020 2222222\n"
    )
    result = run_import(runner, "staff", write(tmp_path, text))
    assert result.stderr.splitlines() == [
        "row 3, column phone: already belongs to staff X1",
        "row 4, column phone: is a landline; SMS and USSD need a mobile number",
    ]
    assert count(services, Staff) == 1


def _staff_phones(services) -> dict[str, str | None]:
    with services.transaction() as session:
        return dict(session.execute(select(Staff.external_id, Staff.phone)).tuples().all())


def test_a_phone_handed_over_between_officers_in_one_file_moves_whichever_row_comes_first(runner, services, tmp_path):
    run_import(runner, "offices", EXAMPLES / "offices.csv")
    header = "external_id,name,office_external_id,phone\n"
    first = header + "A1,Amina,EX-KE,0722000001\nB1,Baraka,EX-KE,0722000002\nC1,Chege,EX-KE,0722000003\n"
    assert run_import(runner, "staff", write(tmp_path, first)).exit_code == 0
    # Amina and Baraka swap phones, Chege leaves his to a new officer (her row first) and has none for now.
    handover = header + (
        "N1,Njeri,EX-KE,0722000003\nA1,Amina,EX-KE,0722000002\nB1,Baraka,EX-KE,0722000001\nC1,Chege,EX-KE,\n"
    )
    result = run_import(runner, "staff", write(tmp_path, handover, "handover.csv"))
    assert result.exit_code == 0, result.output
    assert "imported 4, unchanged 0, failed 0" in result.output
    assert _staff_phones(services) == {
        "A1": "+254722000002",
        "B1": "+254722000001",
        "C1": None,
        "N1": "+254722000003",
    }


def test_a_handover_whose_giving_row_is_refused_keeps_the_phone_where_it_was(runner, services, tmp_path):
    run_import(runner, "offices", EXAMPLES / "offices.csv")
    header = "external_id,name,office_external_id,phone\n"
    assert run_import(runner, "staff", write(tmp_path, header + "A1,Amina,EX-KE,0722000001\n")).exit_code == 0
    handover = header + "N1,Njeri,EX-KE,0722000001\nA1,Amina,NO-SUCH-OFFICE,0722000009\n"
    result = run_import(runner, "staff", write(tmp_path, handover, "handover.csv"))
    assert result.stderr.splitlines() == [
        "row 2, column phone: already belongs to staff A1 (whose row has errors)",
        "row 3, column office_external_id: unknown office NO-SUCH-OFFICE",
    ]
    assert _staff_phones(services) == {"A1": "+254722000001"}


def test_default_region_option_reads_national_numbers_for_that_country(runner, services, organisation, tmp_path):
    path = write(tmp_path, "external_id,name,office_external_id,phones\nTZ1,Neema,EX-G-TUMAINI,0712345678\n")
    assert run_import(runner, "clients", path, "--default-region", "TZ").exit_code == 0
    assert phones_of(services, "TZ1") == {"+255712345678"}


def test_an_unreachable_database_is_one_line_and_a_non_zero_exit(runner, tmp_path):
    unreachable = Settings(app_env="test", database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    info = ScriptInfo(create_app=lambda: create_app(unreachable))
    path = write(tmp_path, "external_id,name,level\nO1,Fine,country\n")
    result = runner.invoke(import_command, ["offices", str(path)], obj=info)
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: database error: ")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("typed", "region", "stored"),
    [
        ("0712 345 678", "KE", "+254712345678"),
        ("+254 712-345-678", "KE", "+254712345678"),
        ("254712345678", "KE", "+254712345678"),
        ("00254712345678", "KE", "+254712345678"),
        ("712345678", "KE", "+254712345678"),
        ("0110 200 002", "KE", "+254110200002"),
        ("0712345678", "TZ", "+255712345678"),
        ("+1 650 253 0000", "KE", "+16502530000"),
        ("12345", "KE", None),
        ("7.12345678E+8", "KE", None),
        ("", "KE", None),
    ],
    ids=lambda value: repr(value),
)
def test_phone_normalisation(typed, region, stored):
    assert normalise_phone(typed, region) == stored
