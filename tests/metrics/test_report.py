"""The report: a rich table and a PNG from a JSONL file, through the CLI too."""

from __future__ import annotations

import json

from rich.console import Console
from typer.testing import CliRunner

from pipecat_speculative.cli import app
from pipecat_speculative.metrics import JSONLSink
from pipecat_speculative.metrics.report import load_report, print_report, render_png

from .sessions import speculative_session

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def demo_jsonl(tmp_path):
    records, summary = speculative_session()
    path = tmp_path / "demo.jsonl"
    sink = JSONLSink(path)
    for record in records:
        sink.on_turn(record, summary)
    sink.on_session_end(summary)
    sink.close()
    with path.open("a") as f:
        f.write(json.dumps({"something": "else"}) + "\n")
    return path


def test_the_report_reads_turns_and_sessions_and_skips_other_lines(tmp_path):
    report = load_report(demo_jsonl(tmp_path))
    assert (len(report.turns), len(report.sessions), report.skipped) == (2, 1, 1)
    stats = {s.stage: s for s in report.stage_stats()}
    assert stats["total"].count == 2
    assert stats["total"].p50 == 1925.0  # between 1,680 and 2,170
    assert stats["rag"].p50 is None
    totals = report.speculation_totals()
    assert (totals["started"], totals["adopted"], totals["withdrawn"]) == (2, 1, 1)
    assert totals["hit_rate"] == 0.5
    assert totals["wasted_prompt_tokens"] == 90


def test_the_report_prints_the_turns_percentiles_and_speculation(tmp_path):
    console = Console(record=True, width=200)
    print_report(load_report(demo_jsonl(tmp_path)), console)
    text = console.export_text()
    assert "Turns (2, ms)" in text
    assert "2,170" in text and "1,680" in text
    assert "p95" in text
    assert "hit rate" in text and "50%" in text


def test_on_a_narrow_terminal_the_turns_table_keeps_whole_numbers(tmp_path):
    console = Console(record=True, width=80)
    print_report(load_report(demo_jsonl(tmp_path)), console)
    text = console.export_text()
    assert "narrow terminal" in text
    assert "2,170" in text and "1,680" in text  # not cut to "2,…"
    assert all(len(line) <= 80 for line in text.splitlines())


def test_the_report_renders_a_png(tmp_path):
    path = render_png(load_report(demo_jsonl(tmp_path)), tmp_path / "plots" / "demo.png")
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_the_cli_report_command_writes_the_png_next_to_the_file_or_where_told(tmp_path):
    jsonl = demo_jsonl(tmp_path)
    runner = CliRunner()
    result = runner.invoke(app, ["report", str(jsonl)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "demo.png").read_bytes()[:8] == PNG_MAGIC
    elsewhere = tmp_path / "elsewhere.png"
    result = runner.invoke(app, ["report", str(jsonl), "--png", str(elsewhere)])
    assert result.exit_code == 0, result.output
    assert elsewhere.read_bytes()[:8] == PNG_MAGIC


def test_the_cli_refuses_a_missing_file(tmp_path):
    result = CliRunner().invoke(app, ["report", str(tmp_path / "missing.jsonl")])
    assert result.exit_code != 0
