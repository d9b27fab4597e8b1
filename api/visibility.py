"""Which clients an API caller may see: every client for admin keys; for lender keys, only clients who share.

A lender key sees a client when both hold:
- consent: the latest `share_with_lenders` event concerning the key's lender (or, for a key without a lender,
  the latest any-lender event) is a grant (the rule is in `consent.service`);
- scope: if the key lists funds, the client has an account in one of them; if it lists offices, the client's
  office is in the subtree of one of them (both conditions when both are listed).
Everything is evaluated per request, so a revocation or a key change is effective on the next call. The same rule
limits a lender's aggregates: they count only the clients the lender could read one by one.
"""

from __future__ import annotations

from sqlalchemy import Select, false, or_, select
from sqlalchemy.orm import Session

from accounts.models import Account, Client, Fund, Office
from api.keys import Caller
from consent.service import SHARE_WITH_LENDERS, sharing_client_ids
from feeds.aggregates import Scope


def visible_clients(session: Session, caller: Caller) -> Select[tuple[Client]]:
    """A SELECT of the clients `caller` may see (callers without client access are refused earlier)."""
    query = select(Client)
    if not caller.is_lender:
        return query
    query = query.where(Client.id.in_(sharing_client_ids(SHARE_WITH_LENDERS, lender=caller.lender)))
    if caller.funds:
        funded = (
            select(Account.client_id).join(Fund, Fund.id == Account.fund_id).where(Fund.external_id.in_(caller.funds))
        )
        query = query.where(Client.id.in_(funded))
    if caller.offices:
        query = query.where(Client.office_id.in_(_subtree_office_ids(session, caller.offices)))
    return query


def _subtree_office_ids(session: Session, office_external_ids: tuple[str, ...]) -> Select[tuple[int]]:
    paths = list(session.scalars(select(Office.path).where(Office.external_id.in_(office_external_ids))))
    if not paths:
        return select(Office.id).where(false())  # the key's offices are gone: it sees nobody
    return select(Office.id).where(or_(*(Office.path.startswith(path, autoescape=True) for path in paths)))


def aggregate_scope(caller: Caller) -> Scope | None:
    """The aggregates restriction for a caller: for a lender, the clients it may see (consent, funds and offices),
    so no cell counts a client who does not share with it; nothing for admin and portal."""
    if not caller.is_lender:
        return None
    sharing = sharing_client_ids(SHARE_WITH_LENDERS, lender=caller.lender)
    return Scope(funds=caller.funds or None, offices=caller.offices or None, clients=sharing)
