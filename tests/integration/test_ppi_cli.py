"""`ppi configure|show`, `clients show` and `surveys record|edit|delete` as an MFI administrator uses them."""

from __future__ import annotations

import json
from datetime import date

import pytest

from surveys import service
from surveys.cli import client_show_command, headline_settings, ppi_group, surveys_group
from tests.factories import NOW, configure_ppi, make_client, make_office, make_staff

BANDS = "0-29:Very poor,30-59:Poor,60-100:Better off"
CONFIGURE = ["configure", "--scorecard", "KEN-2024", "--status", "active", "--headline-line", "absolute-poverty-line"]
VERY_POOR = [47, 18, 9, 2, 2, 2, 2, 2, 2, 2]  # KEN-2024 absolute line score 25
BETTER_OFF = [1] * 10  # score 66


def record(session, client, answers, on, **kw):
    return service.create_survey(
        session, client.id, answers, date_collected=on, mode="officer", channel="cli", officer_id=None, now=NOW, **kw
    )


def test_configure_saves_and_show_prints_the_settings(runner, services):
    saved = runner.invoke(ppi_group, [*CONFIGURE, "--bands", BANDS, "--show-band-to-client"])
    assert saved.exit_code == 0, saved.output
    assert "PPI settings saved." in saved.output

    shown = runner.invoke(ppi_group, ["show"])

    assert "KEN-2024 (PPI Kenya 2024)" in shown.output
    assert "absolute-poverty-line (Absolute Poverty Line)" in shown.output
    assert BANDS in shown.output
    assert "Band shown to client: yes" in shown.output


def test_show_says_when_ppi_is_not_configured(runner):
    assert "PPI is not configured" in runner.invoke(ppi_group, ["show"]).output


def test_preview_shows_likelihoods_at_each_band_edge_without_saving(runner, services):
    result = runner.invoke(ppi_group, [*CONFIGURE, "--bands", BANDS, "--preview"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    start = lines.index("Band 'Poor' (30-59): likelihood of being below each line")
    assert "score 30" in lines[start + 1] and "score 59" in lines[start + 1]
    absolute = next(line for line in lines[start:] if line.strip().startswith("Absolute Poverty Line"))
    assert absolute.split()[-2:] == ["55.8%", "18.1%"]  # kenya2024 look-up CSV: 0.5575 at 30, 0.1810 at 59
    assert sum(1 for line in lines if line.startswith("Band '")) == 3
    assert "Not saved (preview)." in result.output
    with services.transaction() as session:
        assert service.get_config(session) is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--bands", "0-24:Very poor,30-100:Other"], "gap between bands: nothing covers 25-29"),
        (["--bands", "0-30:Very poor,25-100:Other"], "bands overlap"),
    ],
)
def test_configure_errors_are_one_line_and_exit_1(runner, extra, message):
    result = runner.invoke(ppi_group, [*CONFIGURE, *extra])

    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_configure_names_the_valid_lines_for_a_bad_slug(runner):
    args = ["configure", "--scorecard", "KEN-2024", "--status", "active", "--headline-line", "poor"]
    result = runner.invoke(ppi_group, args)

    assert result.exit_code == 1
    assert "no poverty line 'poor'; valid lines: food-poverty-line, absolute-poverty-line" in result.output


def test_headline_settings_feed_the_scorecards_command(app, services):
    with app.app_context():
        assert headline_settings() is None
        with services.transaction() as session:
            configure_ppi(session, bands=BANDS)
        line, bands = headline_settings()

    assert line == "absolute-poverty-line"
    assert [(b.low, b.high, b.label) for b in bands] == [
        (0, 29, "Very poor"),
        (30, 59, "Poor"),
        (60, 100, "Better off"),
    ]


@pytest.fixture
def surveyed_client(services):
    """A client with an older officer survey (Very poor) and a later self survey (Better off)."""
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        office = make_office(session, name="Kisumu Branch")
        client = make_client(session, external_id="C-77", name="Akinyi Otieno", office=office, phones=["+254700000077"])
        record(session, client, VERY_POOR, date(2024, 1, 5))
        service.create_survey(
            session, client.id, BETTER_OFF, date_collected=date(2024, 5, 2), mode="self", channel="at-ussd",
            officer_id=None, now=NOW,
        )  # fmt: skip
    return client


def test_clients_show_prints_status_and_surveys(runner, surveyed_client):
    result = runner.invoke(client_show_command, ["C-77"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Client C-77: Akinyi Otieno (Kisumu Branch)"
    assert lines[1].startswith("Poverty status: KEN-2024, band Better off, collected 2024-05-02 (score 66")
    assert lines[2] == "Surveys (2):"
    assert lines[4].split() == [lines[4].split()[0], "2024-01-05", "KEN-2024", "25", "Very", "poor", "officer", "cli"]
    assert lines[5].split()[1:] == ["2024-05-02", "KEN-2024", "66", "Better", "off", "self", "at-ussd"]


def test_clients_show_finds_a_client_by_a_local_phone_number(runner, surveyed_client):
    result = runner.invoke(client_show_command, ["0700 000077", "--json"])

    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)["clients"]
    assert report["external_id"] == "C-77"
    assert report["poverty_status"]["band"] == "Better off"
    assert report["poverty_status"]["date_collected"] == "2024-05-02"
    assert [
        (s["date_collected"], s["headline_score"], s["band"], s["mode"], s["channel"]) for s in report["surveys"]
    ] == [
        ("2024-01-05", 25, "Very poor", "officer", "cli"),
        ("2024-05-02", 66, "Better off", "self", "at-ussd"),
    ]


def test_clients_show_lists_every_client_on_a_shared_phone(runner, services):
    with services.transaction() as session:
        make_client(session, external_id="C-1", name="Amina", phones=["+254700000010"])
        make_client(session, external_id="C-2", name="Baraka", phones=["+254700000010"])

    result = runner.invoke(client_show_command, ["+254700000010", "--json"])

    reports = json.loads(result.output)["clients"]
    assert [r["external_id"] for r in reports] == ["C-1", "C-2"]
    assert all(r["poverty_status"] is None and r["surveys"] == [] for r in reports)


def test_clients_show_unknown_client_is_a_one_line_error(runner):
    result = runner.invoke(client_show_command, ["C-404"])

    assert result.exit_code == 1
    assert result.output.strip() == "Error: no client with external id or phone 'C-404'"


def test_surveys_record_edit_delete_from_the_terminal(runner, services):
    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)
        make_client(session, external_id="C-9")
        make_staff(session, external_id="S001")

    recorded = runner.invoke(
        surveys_group,
        ["record", "C-9", "--answers", ",".join(map(str, VERY_POOR)), "--date", "2024-02-01", "--officer", "S001"],
    )
    assert recorded.exit_code == 0, recorded.output
    survey_id = int(recorded.output.split()[1])
    assert "score 25 on absolute-poverty-line, band Very poor" in recorded.output

    edited = runner.invoke(surveys_group, ["edit", str(survey_id), "--answers", ",".join(map(str, BETTER_OFF))])
    assert "band Better off" in edited.output
    assert "band Better off" in runner.invoke(client_show_command, ["C-9"]).output

    assert runner.invoke(surveys_group, ["delete", str(survey_id)]).exit_code == 0
    assert "Poverty status: no survey yet" in runner.invoke(client_show_command, ["C-9"]).output


def test_surveys_record_refuses_a_future_date_and_bad_answers(runner, services):
    with services.transaction() as session:
        configure_ppi(session)
        make_client(session, external_id="C-9")

    future = runner.invoke(surveys_group, ["record", "C-9", "--answers", "1,1,1,1,1,1,1,1,1,1", "--date", "2999-01-01"])
    short = runner.invoke(surveys_group, ["record", "C-9", "--answers", "1,1"])

    assert future.exit_code == 1 and "2999-01-01 is in the future" in future.output
    assert short.exit_code == 1 and "Q3: reply 1-9 (missing)" in short.output


def test_scoring_another_scorecard_than_the_configured_one_reports_the_line_a_survey_on_it_would(app, services):
    from scoring.cli import make_scorecards_group

    with services.transaction() as session:
        configure_ppi(session, bands=BANDS)  # KEN-2024, headline absolute-poverty-line
    group = make_scorecards_group(headline_settings)
    with app.app_context():
        result = app.test_cli_runner().invoke(group, ["score", "KEN-2008", "--answers", ",".join(["1"] * 10), "--json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert document["lines"] and document["headline"]["line"] == document["lines"][0]["id"]
    with services.transaction() as session:
        client_id = make_client(session).id
        survey = service.create_survey(
            session, client_id, [1] * 10, date_collected=NOW.date(), mode="self", channel="cli",
            officer_id=None, now=NOW, scorecard_id="KEN-2008",
        )  # fmt: skip
        assert (survey.headline_line, survey.headline_score, survey.band) == (
            document["headline"]["line"], document["headline"]["score"], document["headline"]["band"]
        )  # fmt: skip
