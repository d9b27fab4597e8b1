"""A flood of USSD hops from one number is told "too many requests" while another number is still served."""

from __future__ import annotations

import pytest

from settings import Settings
from tests.conftest import TEST_REDIS_URL
from tests.factories import configure_ppi, make_client

LIMIT = 5
FLOODER = "+254700000002"
NEIGHBOUR = "+254700000009"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        app_env="test", database_url=database_url, redis_url=TEST_REDIS_URL, rate_limit_per_phone_per_minute=LIMIT
    )


def _hop(client, phone: str, session_id: str, text: str = "") -> str:  # type: ignore[no-untyped-def]
    form = {"sessionId": session_id, "serviceCode": "*384#", "phoneNumber": phone, "networkCode": "1", "text": text}
    response = client.post("/webhooks/africastalking/ussd", data=form)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_a_flooding_number_is_refused_and_another_number_is_still_served(client, services):
    with services.transaction() as session:
        configure_ppi(session)
        make_client(session, phones=[FLOODER], language="en")
        make_client(session, phones=[NEIGHBOUR], language="en")
    # Three times the limit: even if a minute boundary falls in the middle, one window sees more than LIMIT hops.
    screens = [_hop(client, FLOODER, f"flood-{index}") for index in range(3 * LIMIT)]
    refused = [screen for screen in screens if screen.startswith("END Too many requests")]
    assert refused and screens[0].startswith("CON ")
    assert len(refused) <= 3 * LIMIT - LIMIT
    assert _hop(client, NEIGHBOUR, "neighbour").startswith("CON Main menu")
