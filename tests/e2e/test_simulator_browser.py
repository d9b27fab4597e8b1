"""The simulator page in a real browser (headless Chromium from Debian, driven by Selenium): a client completes a
PPI survey with the page's dial pad, and an SMS typed on the page gets its reply in the thread.

The app runs on a loopback port with werkzeug, on the test settings (so on PostgreSQL and Redis when the
TEST_* variables are set). Skipped only when /usr/bin/chromium is not installed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not CHROMIUM.exists():
    pytest.skip("needs Debian's chromium (apt-get install chromium chromium-driver)", allow_module_level=True)

from flask import Flask  # noqa: E402
from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402
from sqlalchemy import select  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from surveys.models import SurveyResponse  # noqa: E402
from tests.factories import CLIENT_PHONE, STANDARD_BANDS  # noqa: E402

PHONE = CLIENT_PHONE
BANDS = STANDARD_BANDS
BROWSER_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1000",
)
WAIT_SECONDS = 20  # an upper bound for a hop on a loaded machine, not a speed check


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def screen_text(browser: WebDriver) -> str:
    return browser.find_element(By.ID, "screen-text").text


def wait_for_screen(browser: WebDriver, starts_with: str) -> str:
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: screen_text(driver).startswith(starts_with))
    return screen_text(browser)


def press(browser: WebDriver, key: str) -> None:
    """Type `key` on the dial pad and press Send, as a trainee would."""
    browser.find_element(By.CSS_SELECTOR, f'.keypad button[data-key="{key}"]').click()
    browser.find_element(By.ID, "send").click()


def open_page_as(browser: WebDriver, live_server: str, phone: str) -> None:
    browser.get(f"{live_server}/simulator")
    field = browser.find_element(By.ID, "phone")
    field.clear()
    field.send_keys(phone)


def test_a_client_completes_a_ppi_survey_on_the_simulator_page(browser, live_server, services, survey_client):
    open_page_as(browser, live_server, PHONE)
    browser.find_element(By.ID, "dial").click()
    assert "PPI survey" in wait_for_screen(browser, "Main menu")
    press(browser, "1")
    wait_for_screen(browser, "1/10 ")
    for question in range(2, 11):
        press(browser, "1")
        wait_for_screen(browser, f"{question}/10 ")
    press(browser, "1")
    assert "Submit" in wait_for_screen(browser, "Check your answers")
    press(browser, "1")
    done = wait_for_screen(browser, "Thank you! Your survey is complete.")
    assert "Your result:" in done and "%" not in done
    assert browser.find_element(By.ID, "handset").get_attribute("data-state") == "ended"
    assert "Dial again" in browser.find_element(By.ID, "ussd-status").text
    with services.transaction() as session:
        survey = session.scalars(select(SurveyResponse)).one()
        assert survey.channel == "at-ussd" and [answer.option_position for answer in survey.answers] == [1] * 10


def test_an_sms_typed_on_the_page_gets_its_reply_in_the_thread(browser, live_server, survey_client):
    open_page_as(browser, live_server, PHONE)
    browser.find_element(By.ID, "sms").send_keys("menu")
    browser.find_element(By.ID, "sms-send").click()
    WebDriverWait(browser, WAIT_SECONDS).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, ".bubble.out"))
    sent = browser.find_element(By.CSS_SELECTOR, ".bubble.in").text
    reply = browser.find_element(By.CSS_SELECTOR, ".bubble.out").text
    assert "menu" in sent
    assert "PPI survey" in reply
