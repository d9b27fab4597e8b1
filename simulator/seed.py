"""Demo data for `impact-connect demo`: one Kenyan MFI with offices, officers, clients, money and PPI history.

Everything is drawn from `random.Random(2026)` and dates count back from `now`, so two machines get the same MFI.
The whole plan is built in memory first (the random draws never depend on what the database already holds), then
only the rows whose external ids are missing are inserted: seeding twice changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import cast

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from accounts.models import Account, Client, ClientPhone, Fund, LoanProduct, Office, Staff, Transaction
from feeds.facts import refresh_facts
from surveys.models import SurveyResponse

SEED = 2026
SCORECARD_ID = "KEN-2024"
BANDS = "0-24:Very poor,25-44:Poor,45-69:At risk,70-100:Non-poor"
CLIENT_COUNT = 200
SURVEYED_CLIENTS = 150
SHARED_PHONE_CLIENT = "C0200"  # shares C0001's phone, as families often do
SURVEY_KEY_PREFIX = "demo-"

REGIONS = {"Central": ("Nyeri", "Murang'a"), "Coast": ("Mombasa", "Kilifi")}
GROUP_NAMES = ("Umoja", "Tumaini", "Baraka", "Neema", "Upendo", "Amani", "Jitegemee", "Bidii")
OFFICERS = ("Grace Wanjiru", "Samuel Kiprotich", "Mercy Akinyi", "Joseph Mwangi")
FIRST_NAMES = (
    "Wanjiku", "Akinyi", "Achieng", "Njeri", "Wairimu", "Atieno", "Chebet", "Jepkosgei", "Nafula", "Mwende",
    "Kadzo", "Zawadi", "Amina", "Halima", "Faith", "Mercy", "Esther", "Lucy", "Mary", "Grace", "Ruth", "Nyambura",
    "Kamau", "Otieno", "Odhiambo", "Kiprono", "Kibet", "Mutua", "Wafula", "Baraka", "Juma", "Hassan", "Omondi",
    "Njoroge", "Mwangi", "Kiptoo", "Peter", "John", "Joseph", "David", "Daniel", "Samuel",
)  # fmt: skip
SURNAMES = (
    "Kamau", "Wanjiru", "Otieno", "Ochieng", "Mwangi", "Njoroge", "Kariuki", "Kiprop", "Rotich", "Kosgei", "Mutua",
    "Musyoka", "Wambua", "Barasa", "Wekesa", "Simiyu", "Omondi", "Onyango", "Owino", "Chege", "Gitau", "Maina",
    "Kahindi", "Mwamburi", "Charo", "Baya", "Mohamed", "Ali", "Nyaga", "Muriuki", "Kimani", "Ndungu", "Kilonzo",
)  # fmt: skip
FUNDS = (("F-OWN", "Own Capital"), ("F-GREEN", "Green Growth Fund"))
PRODUCTS = (("P-BIASHARA", "Biashara Loan"), ("P-KILIMO", "Kilimo Loan"), ("P-ELIMU", "Elimu School Fees Loan"))
INTEREST = Decimal("0.18")  # flat, over the 12-month term
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class DemoSummary:
    offices_by_level: dict[str, int]
    officers: int
    clients: int
    accounts: int
    transactions: int
    surveys: int
    rows_created: int


@dataclass
class _Plan:
    offices: list[dict[str, object]] = field(default_factory=list)  # parent_external_id instead of parent_id
    staff: list[dict[str, object]] = field(default_factory=list)  # office_external_id
    clients: list[dict[str, object]] = field(default_factory=list)  # office/officer external ids, phones
    accounts: list[dict[str, object]] = field(default_factory=list)  # client/product/fund external ids
    transactions: list[dict[str, object]] = field(default_factory=list)  # account_external_id
    surveys: list[dict[str, object]] = field(default_factory=list)  # client external id, answers, date, mode


def seed_demo(session: Session, *, now: datetime) -> DemoSummary:
    """Insert whatever part of the demo MFI is missing; returns what the database holds afterwards."""
    plan = demo_plan(now, _survey_questions())
    created = _seed_offices(session, plan.offices)
    created += _seed_staff(session, plan.staff)
    created += _seed_named(session, Fund, FUNDS) + _seed_named(session, LoanProduct, PRODUCTS)
    created += _seed_clients(session, plan.clients)
    created += _seed_accounts(session, plan.accounts)
    created += _seed_transactions(session, plan.transactions)
    created += _seed_ppi_settings(session, now)
    created += _seed_surveys(session, plan.surveys, now)
    return summarize(session, created)


def summarize(session: Session, created: int = 0) -> DemoSummary:
    levels = dict(session.execute(select(Office.level, func.count()).group_by(Office.level)).tuples().all())
    officers = session.scalar(select(func.count()).select_from(Staff).where(Staff.role == "loan_officer")) or 0
    return DemoSummary(
        offices_by_level=levels,
        officers=officers,
        clients=_count(session, Client),
        accounts=_count(session, Account),
        transactions=_count(session, Transaction),
        surveys=_count(session, SurveyResponse),
        rows_created=created,
    )


def _count(session: Session, model: type) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


# ------------------------------------------------------------------------------------------- the plan (pure)


def demo_plan(now: datetime, questions: list[list[int]]) -> _Plan:
    """The whole demo MFI as plain dicts; `questions` holds each question's options ranked poorest first."""
    rng = random.Random(SEED)
    today = now.date()
    plan = _Plan()
    groups, officer_of_branch = _plan_offices(plan)
    for index in range(1, CLIENT_COUNT + 1):
        group, branch = groups[(index - 1) % len(groups)]
        _plan_client(plan, rng, index, group, officer_of_branch[branch], today)
    for client in plan.clients:
        _plan_money(plan, rng, client, today)
    _plan_surveys(plan, rng, questions, today)
    return plan


def _plan_offices(plan: _Plan) -> tuple[list[tuple[str, str]], dict[str, str]]:
    plan.offices.append(_office("KE", "Demo MFI Kenya", "country", None))
    groups: list[tuple[str, str]] = []
    officers: dict[str, str] = {}
    for r, (region, branches) in enumerate(REGIONS.items(), start=1):
        region_id = f"KE-R{r}"
        plan.offices.append(_office(region_id, f"{region} Region", "region", "KE"))
        for b, branch in enumerate(branches, start=1):
            branch_id = f"{region_id}-B{b}"
            plan.offices.append(_office(branch_id, f"{branch} Branch", "branch", region_id))
            officer = f"S{len(officers) + 1:03d}"
            officers[branch_id] = officer
            plan.staff.append(_officer(officer, branch_id, len(officers)))
            for c in (1, 2):
                center_id = f"{branch_id}-C{c}"
                plan.offices.append(_office(center_id, f"{branch} Centre {'AB'[c - 1]}", "center", branch_id))
                for g in (1, 2):
                    name = GROUP_NAMES[(len(groups)) % len(GROUP_NAMES)]
                    group_id = f"{center_id}-G{g}"
                    plan.offices.append(_office(group_id, f"{branch} {name} Group", "group", center_id))
                    groups.append((group_id, branch_id))
    return groups, officers


def _office(external_id: str, name: str, level: str, parent: str | None) -> dict[str, object]:
    return {
        "external_id": external_id,
        "name": name,
        "level": level,
        "parent_external_id": parent,
        "country_code": "KE",
        "default_language": "sw",
    }


def _officer(external_id: str, branch: str, number: int) -> dict[str, object]:
    return {
        "external_id": external_id,
        "name": OFFICERS[number - 1],
        "office_external_id": branch,
        "phone": f"+254711{number:06d}",
        "role": "loan_officer",
        "language": "sw" if number % 2 else "en",
    }


def _plan_client(plan: _Plan, rng: random.Random, index: int, group: str, officer: str, today: date) -> None:
    external_id = f"C{index:04d}"
    phone = f"+254700{1 if external_id == SHARED_PHONE_CLIENT else index:06d}"
    plan.clients.append(
        {
            "external_id": external_id,
            "name": f"{rng.choice(FIRST_NAMES)} {rng.choice(SURNAMES)}",
            "office_external_id": group,
            "officer_external_id": officer,
            "language": "sw" if rng.random() < 0.55 else "en",
            "activated_on": today - timedelta(days=rng.randint(400, 1500)),
            "phones": (phone,),
        }
    )


def _plan_money(plan: _Plan, rng: random.Random, client: dict[str, object], today: date) -> None:
    number = str(client["external_id"])[1:]
    if rng.random() < 0.85:
        _plan_loan(plan, rng, f"LN{number}", str(client["external_id"]), today)
    if rng.random() < 0.6:
        _plan_savings(plan, rng, f"SV{number}", client, today)


def _plan_loan(plan: _Plan, rng: random.Random, external_id: str, client: str, today: date) -> None:
    principal = Decimal(rng.randrange(10_000, 150_001, 5_000))
    total = (principal * (1 + INTEREST)).quantize(CENTS)
    installment = (total / 12).quantize(Decimal("10"))
    opened = today - timedelta(days=rng.randint(20, 360))
    reliability = rng.choice((0.99, 0.97, 0.95, 0.8))
    transactions = [_txn(external_id, 1, opened, "disbursement", principal, total)]
    balance, missed, due = total, 0, opened + timedelta(days=30)
    while due <= today and balance > 0:
        if rng.random() < reliability:
            amount = min(installment, balance)
            balance -= amount
            transactions.append(_txn(external_id, len(transactions) + 1, due, "repayment", amount, balance))
        else:
            missed += 1
        due += timedelta(days=30)
    plan.transactions.extend(transactions)
    plan.accounts.append(
        {
            "external_id": external_id,
            "client_external_id": client,
            "kind": "loan",
            "product_external_id": rng.choice(PRODUCTS)[0],
            "fund_external_id": rng.choice(FUNDS)[0],
            "opened_on": opened,
            "principal": principal,
            "balance": balance,
            "next_due_date": due if balance > 0 else None,
            "next_due_amount": min(installment, balance) if balance > 0 else None,
            "arrears": min(installment * missed, balance),
            "status": "active" if balance > 0 else "closed",
        }
    )


def _plan_savings(plan: _Plan, rng: random.Random, external_id: str, client: dict[str, object], today: date) -> None:
    balance = Decimal(rng.randrange(0, 5_001, 50))
    transactions: list[dict[str, object]] = []
    day = today - timedelta(days=365) + timedelta(days=rng.randint(0, 27))
    while day <= today:
        if rng.random() < 0.8:
            amount = Decimal(rng.randrange(200, 3_001, 50))
            balance += amount
            transactions.append(_txn(external_id, len(transactions) + 1, day, "deposit", amount, balance))
        if rng.random() < 0.15 and balance > 1_000:
            amount = Decimal(rng.randrange(500, int(balance) // 2 + 1, 50))
            balance -= amount
            transactions.append(_txn(external_id, len(transactions) + 1, day, "withdrawal", amount, balance))
        day += timedelta(days=rng.randint(25, 35))
    plan.transactions.extend(transactions)
    plan.accounts.append(
        {
            "external_id": external_id,
            "client_external_id": client["external_id"],
            "kind": "savings",
            "opened_on": client["activated_on"],
            "balance": balance,
            "arrears": Decimal("0"),
            "status": "active",
        }
    )


def _txn(account: str, number: int, day: date, kind: str, amount: Decimal, balance: Decimal) -> dict[str, object]:
    return {
        "external_id": f"{account}-T{number:03d}",
        "account_external_id": account,
        "occurred_on": day,
        "kind": kind,
        "amount": amount,
        "balance_after": balance,
    }


def _plan_surveys(plan: _Plan, rng: random.Random, questions: list[list[int]], today: date) -> None:
    """1-3 surveys for 150 clients over the past 18 months; later surveys drift slightly out of poverty."""
    clients = {str(client["external_id"]): client for client in plan.clients}
    for external_id in sorted(rng.sample(sorted(clients), SURVEYED_CLIENTS)):
        wealth = rng.betavariate(2, 3)
        days_ago = sorted(rng.sample(range(1, 548), rng.choice((1, 1, 2, 2, 3))), reverse=True)
        for number, ago in enumerate(days_ago, start=1):
            mode = "self" if rng.random() < 0.6 else "officer"
            plan.surveys.append(
                {
                    "client_external_id": external_id,
                    "officer_external_id": clients[external_id]["officer_external_id"],
                    "submission_key": f"{SURVEY_KEY_PREFIX}{external_id}-{number}",
                    "date_collected": today - timedelta(days=ago),
                    "mode": mode,
                    "channel": "at-ussd" if mode == "self" else "at-sms",
                    "answers": _answers(rng, questions, wealth + 0.06 * (number - 1)),
                }
            )


def _answers(rng: random.Random, questions: list[list[int]], wealth: float) -> list[int]:
    picks = []
    for ranked in questions:
        position = round(min(max(wealth + rng.gauss(0, 0.2), 0.0), 1.0) * (len(ranked) - 1))
        picks.append(ranked[position])
    return picks


# ------------------------------------------------------------------------------------------ the database side


def _survey_questions() -> list[list[int]]:
    """Each question's 1-based option positions ordered by points on the headline line (poorest first)."""
    from scoring.loader import load_scorecard

    card = load_scorecard(SCORECARD_ID)
    line = card.line_slugs().index(national_line(SCORECARD_ID))
    return [
        [
            position
            for position, _answer in sorted(enumerate(question.answers, start=1), key=lambda p: p[1].points[line])
        ]
        for question in card.questions
    ]


def national_line(scorecard_id: str) -> str:
    """The slug of the scorecard's national poverty line (Kenya calls it the Absolute Poverty Line)."""
    from scoring.loader import load_scorecard

    card = load_scorecard(scorecard_id)
    for keyword in ("national", "absolute"):
        for line in card.lines:
            if keyword in line.label.lower() and "food" not in line.label.lower():
                return line.slug
    return card.lines[0].slug


def _missing(session: Session, model: type, rows: list[dict[str, object]]) -> list[dict[str, object]]:
    existing = set(session.scalars(select(model.external_id)))  # type: ignore[attr-defined]
    return [row for row in rows if row["external_id"] not in existing]


def _ids(session: Session, model: type) -> dict[str, int]:
    return {ext: id_ for id_, ext in session.execute(select(model.id, model.external_id))}  # type: ignore[attr-defined]


def _seed_offices(session: Session, offices: list[dict[str, object]]) -> int:
    missing = _missing(session, Office, offices)
    paths = {ext: path for ext, path in session.execute(select(Office.external_id, Office.path))}
    ids = _ids(session, Office)
    for row in missing:  # parents come first in the plan
        parent = row["parent_external_id"]
        values = {key: value for key, value in row.items() if key != "parent_external_id"}
        office = Office(parent_id=ids[str(parent)] if parent else None, **values)
        session.add(office)
        session.flush()
        office.path = f"{paths[str(parent)] if parent else '/'}{office.id}/"
        ids[office.external_id], paths[office.external_id] = office.id, office.path
    session.flush()
    return len(missing)


def _seed_staff(session: Session, staff: list[dict[str, object]]) -> int:
    missing = _missing(session, Staff, staff)
    offices = _ids(session, Office)
    rows = [_resolve(row, office_external_id=("office_id", offices)) for row in missing]
    if rows:
        session.execute(insert(Staff), rows)
    return len(rows)


def _seed_named(session: Session, model: type, pairs: tuple[tuple[str, str], ...]) -> int:
    rows = _missing(session, model, [{"external_id": ext, "name": name} for ext, name in pairs])
    if rows:
        session.execute(insert(model), rows)
    return len(rows)


def _seed_clients(session: Session, clients: list[dict[str, object]]) -> int:
    missing = _missing(session, Client, clients)
    offices, staff = _ids(session, Office), _ids(session, Staff)
    rows = [
        _resolve(row, office_external_id=("office_id", offices), officer_external_id=("officer_id", staff))
        for row in missing
    ]
    phones = {str(row["external_id"]): row.pop("phones") for row in rows}
    if not rows:
        return 0
    statement = insert(Client).returning(Client.id, Client.external_id, sort_by_parameter_order=True)
    ids = {ext: id_ for id_, ext in session.execute(statement, rows)}
    phone_rows = [{"client_id": ids[ext], "phone": phone} for ext, numbers in phones.items() for phone in numbers]  # type: ignore[attr-defined]
    session.execute(insert(ClientPhone), phone_rows)
    return len(rows) + len(phone_rows)


def _seed_accounts(session: Session, accounts: list[dict[str, object]]) -> int:
    missing = _missing(session, Account, accounts)
    clients, products, funds = _ids(session, Client), _ids(session, LoanProduct), _ids(session, Fund)
    rows = [
        _resolve(
            {"currency": "KES", "product_external_id": None, "fund_external_id": None, **row},
            client_external_id=("client_id", clients),
            product_external_id=("product_id", products),
            fund_external_id=("fund_id", funds),
        )
        for row in missing
    ]
    for keys in {tuple(sorted(row)) for row in rows}:  # executemany wants one key set per batch
        session.execute(insert(Account), [row for row in rows if tuple(sorted(row)) == keys])
    refresh_facts(session, [cast(int, row["client_id"]) for row in rows])  # a re-run may reach surveyed clients
    return len(rows)


def _seed_transactions(session: Session, transactions: list[dict[str, object]]) -> int:
    missing = _missing(session, Transaction, transactions)
    accounts = _ids(session, Account)
    rows = [_resolve(row, account_external_id=("account_id", accounts)) for row in missing]
    if rows:
        session.execute(insert(Transaction), rows)
    return len(rows)


def _resolve(row: dict[str, object], **references: tuple[str, dict[str, int]]) -> dict[str, object]:
    """Replace `<thing>_external_id` keys by database ids (None stays None)."""
    resolved = {key: value for key, value in row.items() if key not in references}
    for key, (column, ids) in references.items():
        value = row.get(key)
        resolved[column] = ids[str(value)] if value else None
    return resolved


def _seed_ppi_settings(session: Session, now: datetime) -> int:
    from surveys import service

    if service.get_config(session) is not None:
        return 0  # someone configured PPI already: the demo must not overwrite it
    service.configure(
        session,
        scorecard_id=SCORECARD_ID,
        status="active",
        headline_line=national_line(SCORECARD_ID),
        bands=BANDS,
        show_band_to_client=True,
        now=now,
    )
    return 1


def _seed_surveys(session: Session, surveys: list[dict[str, object]], now: datetime) -> int:
    from surveys import service

    done = set(session.scalars(select(SurveyResponse.submission_key).where(SurveyResponse.submission_key.is_not(None))))
    clients, staff = _ids(session, Client), _ids(session, Staff)
    todo = [survey for survey in surveys if survey["submission_key"] not in done]
    for survey in todo:
        service.create_survey(
            session,
            clients[str(survey["client_external_id"])],
            survey["answers"],  # type: ignore[arg-type]
            date_collected=survey["date_collected"],  # type: ignore[arg-type]
            mode=str(survey["mode"]),
            channel=str(survey["channel"]),
            officer_id=staff[str(survey["officer_external_id"])] if survey["mode"] == "officer" else None,
            now=now,
            scorecard_id=SCORECARD_ID,
            submission_key=str(survey["submission_key"]),
        )
    return len(todo)
