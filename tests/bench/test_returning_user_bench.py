"""The returning-user bench: a history call teaches a stored profile, the next call runs cold and warm.

The end-to-end test runs real pipelines (real clients, stand-ins on the instant profile, Piper
speech in real time) on two tiny calls; it asserts the shape of the results and that the warm
call really started from the stored profile, never timing.
"""

import io
import json

import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipecat_speculative.bench import ScoredTurn
from pipecat_speculative.bench_returning_user import (
    RETURN_SCENARIO,
    ReturningUserOptions,
    run_returning_user_bench,
    turn_metrics,
)
from pipecat_speculative.cli import app
from pipecat_speculative.metrics.turn_record import SpeculationEntry, TurnRecord
from pipecat_speculative.scenarios.scenario import load_builtin_scenario, parse_scenario

METRICS = {
    "turns",
    "answered",
    "cut_ins",
    "withdrawals",
    "adopted",
    "cancel_rate",
    "latency_ms",
    "delay_ms",
}


def scored(turn: int | None, total_ms: float, *outcomes: str, false_commit=False) -> ScoredTurn:
    """A committed turn placed at scenario turn ``turn``; ``tool`` is a tool-call withdrawal."""
    entries = [
        SpeculationEntry(
            index=i,
            outcome="withdrawn" if o in ("withdrawn", "tool") else o,
            counts_toward_cancel_rate=o == "withdrawn",
            delay_secs=0.1 * (i + 1),
        )
        for i, o in enumerate(outcomes)
    ]
    record = TurnRecord(session_id="s", turn=0, stages_ms={"total": total_ms}, speculations=entries)
    return ScoredTurn(record, turn, False, false_commit)


def test_turn_metrics_count_cut_ins_withdrawals_and_time_the_answering_commit():
    turns = [
        scored(0, 300.0, "withdrawn", false_commit=True),  # answered mid-thought: a cut-in
        scored(0, 1200.0, "withdrawn", "tool", "adopted"),  # the answer to the whole turn
        scored(1, 900.0, "adopted"),
        scored(2, 5000.0),  # not asked for
    ]

    first = turn_metrics(turns, [0])
    both = turn_metrics(turns, [0, 1])

    assert set(first) == METRICS
    assert first == {
        "turns": 1,
        "answered": 1,
        "cut_ins": 1,
        "withdrawals": 2,  # the tool call's withdrawal is not a wrong guess
        "adopted": 1,
        "cancel_rate": round(2 / 3, 3),
        "latency_ms": 1200.0,  # the cut-in's "latency" answered nobody
        "delay_ms": 100.0,
    }
    assert both["latency_ms"] == 1050.0  # p50 of 1200 and 900
    assert (both["cut_ins"], both["withdrawals"], both["adopted"]) == (1, 2, 2)
    assert turn_metrics(turns, [3]) == {
        "turns": 1,
        "answered": 0,
        "cut_ins": 0,
        "withdrawals": 0,
        "adopted": 0,
        "cancel_rate": None,
        "latency_ms": None,
        "delay_ms": None,
    }


def test_the_return_call_has_a_tenth_turn_that_mirrors_the_first():
    call = load_builtin_scenario(RETURN_SCENARIO)

    assert len(call.turns) >= 10
    first, tenth = call.turns[0], call.turns[9]
    pauses = [s.pause_after_ms for s in first.segments]
    assert pauses == [s.pause_after_ms for s in tenth.segments] and sum(pauses) > 0
    assert abs(len(first.text.split()) - len(tenth.text.split())) <= 2


def test_returning_user_refuses_options_that_do_not_apply():
    result = CliRunner().invoke(app, ["bench", "--returning-user", "--quick"])

    assert result.exit_code == 1
    assert "--returning-user plays its own two calls" in result.stderr


HISTORY = {
    "name": "tiny_history",
    "gap_after_bot_ms": 300,
    "turns": [
        {"segments": [{"text": "So I was thinking", "pause_after_ms": 700}, "about a trip"]},
        {"segments": ["Thank you"]},
    ],
}
RETURN = {
    "name": "tiny_return",
    "gap_after_bot_ms": 300,
    "turns": [
        {"segments": [{"text": "Hi I wanted to", "pause_after_ms": 700}, "move my booking"]},
        {"segments": ["Yes please"]},
        {"segments": ["That is all"]},
    ],
}


@pytest.mark.timeout(180)
async def test_the_bench_stores_the_history_profile_and_warm_starts_the_next_call(tmp_path):
    out = tmp_path / "returning.json"
    printed = io.StringIO()

    document = await run_returning_user_bench(
        ReturningUserOptions(
            profiles=["instant"],
            history=parse_scenario(HISTORY),
            scenario=parse_scenario(RETURN),
            first_turns=2,
            compare_turn=3,
            json_path=out,
            playback_speed=8.0,
        ),
        console=Console(file=printed, width=200),
    )

    assert json.loads(out.read_text()) == json.loads(json.dumps(document))
    (block,) = document["profiles"].values()
    stored = block["stored_profile"]
    assert stored["sessions_seen"] == 1 and stored["turns_seen"] >= 2
    cold, warm = block["sessions"]["cold"], block["sessions"]["warm"]
    for session in (cold, warm):
        assert [t["turn"] for t in session["per_turn"]] == [1, 2, 3]
        for metrics in (*session["per_turn"], session["first_turns"], session["call"]):
            assert METRICS <= set(metrics)
        assert session["first_turns"]["turns"] == 2 and session["call"]["turns"] == 3
        assert session["call"]["answered"] == 3
        assert session["bench"]["answers_per_committed_turn"] == 1.0
    # The warm call carried the stored profile on (its snapshot counts two calls); the cold one
    # started from nothing.
    assert warm["profile_after"]["sessions_seen"] == 2
    assert cold["profile_after"]["sessions_seen"] == 1
    (warm_debounce,) = warm["bench"]["debounce"]
    assert warm_debounce["start_ms"] == stored["speculation_delay_ms"]
    target = block["target"]
    assert target["cold_compare_turn"] == cold["per_turn"][2]
    assert target["warm_first_turn"] == warm["per_turn"][0]
    assert set(target["checks"]) == {"cut_ins", "withdrawals", "latency"}
    # One markdown row per opening turn, then the aggregates and the comparison turn.
    rows = [line.split("|")[1].strip() for line in printed.getvalue().splitlines() if "|" in line]
    assert rows[2:] == ["1", "2", "turns 1-2", "3", "whole call"]
