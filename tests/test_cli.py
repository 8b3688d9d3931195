"""The command line fails clearly: bad input ends with one precise line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from pipecat_speculative.cli import app
from pipecat_speculative.metrics.turn_record import SCHEMA_NAME, SCHEMA_VERSION

runner = CliRunner()


def turn_line(**overrides) -> str:
    record = {
        "schema": SCHEMA_NAME,
        "schema_version": SCHEMA_VERSION,
        "record": "turn",
        "session_id": "s",
        "turn": 1,
    }
    record.update(overrides)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def report(tmp_path, text: str, *args: str):
    path = tmp_path / "turns.jsonl"
    path.write_text(text)
    return path, runner.invoke(app, ["report", str(path), *args])


def assert_clean_failure(result, *fragments: str):
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# -- report -------------------------------------------------------------------------------------


def test_an_empty_file_is_reported_as_empty(tmp_path):
    path, result = report(tmp_path, "")
    assert_clean_failure(result, str(path), "the file is empty")
    assert not (tmp_path / "turns.png").exists()


def test_a_line_that_is_not_json_is_named_with_its_line_number(tmp_path):
    path, result = report(tmp_path, turn_line() + "\n{not json\n")
    assert_clean_failure(result, f"{path}:2:", "not JSON")


def test_a_missing_field_is_named_with_line_and_field(tmp_path):
    path, result = report(tmp_path, turn_line() + "\n" + turn_line(turn=...) + "\n")
    assert_clean_failure(result, f"{path}:2:", "'turn'", "missing")


def test_a_mistyped_nested_field_is_named_with_its_path(tmp_path):
    line = turn_line(speculations=[{"index": 0}, {"index": "one"}])
    path, result = report(tmp_path, line + "\n")
    assert_clean_failure(result, f"{path}:1:", "'speculations[1].index'", "must be int")


def test_a_newer_schema_version_is_reported_as_such(tmp_path):
    path, result = report(tmp_path, turn_line(schema_version=SCHEMA_VERSION + 1) + "\n")
    assert_clean_failure(result, f"{path}:1:", f"schema version {SCHEMA_VERSION + 1}", "upgrade")


def test_a_file_without_any_turn_timing_record_is_refused(tmp_path):
    path, result = report(tmp_path, json.dumps({"something": "else"}) + "\n")
    assert_clean_failure(result, str(path), "no pipecat-speculative/turn-timing records")


def test_debug_shows_the_traceback_instead(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text("")
    result = runner.invoke(app, ["--debug", "report", str(path)])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "ReportInputError"


# -- scenario and profile -----------------------------------------------------------------------


def test_a_bad_scenario_file_is_named_with_its_field(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("turns:\n  - segments:\n      - {text: hi, pause_after_ms: -5}\n")
    result = runner.invoke(app, ["demo", "--scenario", str(scenario)])
    assert_clean_failure(result, str(scenario), "turns[0].segments[0]")


def test_an_unknown_builtin_scenario_is_named(tmp_path):
    result = runner.invoke(app, ["demo", "--scenario", "no_such_scenario"])
    assert_clean_failure(result, "no_such_scenario")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("base: warp\n", "base must be one of reference, slow, fast, instant"),
        ("nonsense_field: 1\n", "unknown latency profile fields: nonsense_field"),
        ("[1, 2\n", "not valid YAML"),
    ],
)
def test_a_bad_profile_is_named_with_its_problem(tmp_path, text, fragment):
    profile = tmp_path / "profile.yaml"
    profile.write_text(text)
    result = runner.invoke(app, ["bench", "--profile", str(profile)])
    assert_clean_failure(result, str(profile), fragment)


def test_an_unknown_profile_name_is_named():
    result = runner.invoke(app, ["bench", "--profile", "medium"])
    assert_clean_failure(result, "medium", "neither a latency profile name")


def test_a_bad_scenario_directory_is_refused_before_the_bench_starts(tmp_path):
    (tmp_path / "a.yaml").write_text("turns: []\n")
    result = runner.invoke(app, ["bench", "--scenarios", str(tmp_path)])
    assert_clean_failure(result, str(tmp_path / "a.yaml"), "turns")


# -- version and banner -------------------------------------------------------------------------


def test_version_prints_both_versions():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("pipecat-speculative ")
    assert "pipecat-ai 1.14" in result.stdout


def test_no_pipecat_banner_on_a_command(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "pipecat_speculative.cli", "report", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "ᓚᘏᗢ" not in result.stderr + result.stdout
    assert result.stderr.strip() == f"error: {path}: the file is empty"
