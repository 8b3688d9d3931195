"""The what-if tuner: pauses recorded by the tracker, replayed through the real planner.

Every replay here is a hand-built turn whose outcome under a setting is worked out by hand from
the planner's rules (the commit rule fires ``floor`` after a VAD stop; the planner holds it until
the answer is ready, never before commit patience; patience after a cut-in is
``pause × 1.5 + 0.1``).
"""

from __future__ import annotations

import json

import pytest
from pipecat.frames.frames import (
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
)
from typer.testing import CliRunner

from pipecat_speculative.cli import app
from pipecat_speculative.metrics import (
    PauseEntry,
    SessionSummary,
    SpeculationEntry,
    TurnCompleted,
    TurnRecord,
    TurnTimingObserver,
    TurnTimingTracker,
)
from pipecat_speculative.metrics.report import TimingReport
from pipecat_speculative.metrics.tuner import (
    ReplayPause,
    ReplayResult,
    ReplayTurn,
    TuneSetting,
    recommend,
    replay,
    replay_turns,
    tune,
)
from pipecat_speculative.profiles import TurnTakingProfile, warm_start
from pipecat_speculative.turns import (
    DebounceParams,
    FreePatienceUserTurnStopStrategy,
    SpeculationPlanner,
    SpeculativeTurnParams,
    SpeculativeUserTurnStopStrategy,
)

from .fakes import record_events
from .scripted import Script

runner = CliRunner()

FLUENT = ReplayTurn("s", (0,), (ReplayPause(0.9, resumed=False),), readiness_secs=0.5)
HESITANT = ReplayTurn(
    "s",
    (1,),
    (
        ReplayPause(0.7, resumed=True, speech_secs=1.0, words_secs=0.2),
        ReplayPause(0.9, resumed=False),
    ),
    readiness_secs=0.5,
    tokens_per_speculation=100.0,
)
BLIP = ReplayTurn(
    "s",
    (2,),
    (
        ReplayPause(0.3, resumed=True, speech_secs=0.2, words_secs=None),
        ReplayPause(0.9, resumed=False),
    ),
    readiness_secs=0.5,
)


# -- what the tracker records -------------------------------------------------------------------


def test_the_tracker_records_every_pause_its_words_and_the_speech_after_the_commit():
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.speech_started(1.9)  # the user goes on after 0.7 s ...
    t.user_words(2.1)  # ... with words 0.2 s in
    t.vad_stopped(3.0, stop_secs=0.2)
    t.speech_started(3.3)  # a cough: no words
    t.vad_stopped(3.5, stop_secs=0.2)
    t.inference_started(3.6, key=1, speculative=True, text="x")
    t.annotate_speculation_started(strategy_id=9, text="x", delay_secs=0.1)
    t.annotate_speculation_ready(strategy_id=9, secs=0.45)
    t.user_turn_committed(4.4)
    t.speech_started(4.9)  # the next turn, 0.5 s after the commit
    t.session_ended(6.0)
    (record,) = [e.record for e in t.drain() if isinstance(e, TurnCompleted)]

    assert record.pauses == [
        PauseEntry(silence_ms=700.0, resumed=True, speech_ms=1100.0, words_ms=200.0),
        PauseEntry(silence_ms=300.0, resumed=True, speech_ms=200.0, words_ms=None),
        PauseEntry(silence_ms=900.0, resumed=False),
    ]
    assert record.speech_after_commit_ms == 500.0
    assert record.speculations[0].ready_ms == 450.0
    again = TurnRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert again.pauses == record.pauses


async def test_the_observer_records_when_each_pause_s_final_came_and_if_it_matched():
    s = Script()
    recorded = record_events(s.observer)
    await s.push(0, VADUserStartedSpeakingFrame())
    await s.push(300, InterimTranscriptionFrame("i want", "u", "t"))
    await s.vad_stop(1000)
    await s.push(1150, TranscriptionFrame("I want,", "u", "t"))  # the same words: matched
    await s.push(1700, VADUserStartedSpeakingFrame())
    await s.push(1800, InterimTranscriptionFrame("to go", "u", "t"))
    await s.vad_stop(2500)
    # A late interim does not change what a speculation at the VAD stop answered ("to go").
    await s.push(2550, InterimTranscriptionFrame("to go home", "u", "t"))
    await s.push(2600, TranscriptionFrame("to go home", "u", "t"))  # more words: not matched
    await s.push(3200, UserStoppedSpeakingFrame())
    await s.push(3300, UserStartedSpeakingFrame())  # the user goes on: a cut-in
    await s.observer.cleanup()
    (record,) = recorded.records

    assert record.pauses == [
        PauseEntry(
            700.0, True, speech_ms=800.0, words_ms=100.0, final_ms=150.0, final_matched=True
        ),
        PauseEntry(700.0, False, final_ms=100.0, final_matched=False),
    ]
    assert record.speech_after_commit_ms == 100.0
    assert (record.first_speech_ms, record.first_words_ms) == (1000.0, 300.0)


def test_attaching_a_strategy_records_the_settings_a_replay_starts_from():
    strategy = SpeculativeUserTurnStopStrategy(
        commit_strategy=FreePatienceUserTurnStopStrategy(floor_secs=0.45),
        params=SpeculativeTurnParams(resume_backoff=2.0, debounce=DebounceParams(initial_secs=0.1)),
    )
    observer = TurnTimingObserver(log=False)
    observer.attach(strategy)
    s = observer.summary()
    settings = (s.debounce_initial_secs, s.debounce_min_secs, s.commit_floor_secs, s.resume_backoff)
    assert settings == (0.1, 0.0, 0.45, 2.0)


def test_a_record_of_an_older_version_reads_with_pauses_unknown_not_empty():
    data = TurnRecord(session_id="s", turn=0).to_dict()
    del data["pauses"], data["speech_after_commit_ms"]
    assert TurnRecord.from_dict(data).pauses is None


# -- the replay core ----------------------------------------------------------------------------


def test_fluent_turns_commit_at_the_floor_with_the_answer_ready_and_save_the_inference():
    result = replay([FLUENT, FLUENT], TuneSetting(0.0, 0.6, 1.5))
    # Speculated at the VAD stop, ready 0.5 s later, committed at the 0.6 s floor.
    assert result.latencies_secs == pytest.approx([0.6, 0.6])
    assert result.saved_secs == pytest.approx([0.5, 0.5])  # stock: 0.6 + 0.5
    assert (result.started, result.adopted, result.withdrawn, result.cut_ins) == (2, 2, 0, 0)
    assert result.cancel_rate == 0.0


def test_a_floor_shorter_than_the_pause_cuts_in_and_patience_learns_from_it():
    result = replay([HESITANT], TuneSetting(0.0, 0.6, 1.0))
    # 1.0 VAD stop, speculation ready 1.5, commit 1.6 inside the 0.7 s pause: a cut-in. The
    # continuation is a new turn; the cut-in taught patience 0.7 × 1.5 + 0.1 = 1.15 s.
    assert result.cut_ins == 1
    assert (result.started, result.adopted, result.withdrawn) == (2, 2, 0)
    assert result.latencies_secs == pytest.approx([1.15])


def test_a_floor_longer_than_the_pause_withdraws_instead_of_cutting_in():
    result = replay([HESITANT], TuneSetting(0.0, 0.8, 1.0))
    # The user goes on at 1.7, before the 1.8 commit rule: the speculation is withdrawn when
    # the words come; patience (1.15 s) then holds the last commit past the ready answer.
    assert result.cut_ins == 0
    assert (result.started, result.adopted, result.withdrawn) == (2, 1, 1)
    assert result.cancel_rate == 0.5
    assert result.wasted_tokens == 100.0
    assert result.latencies_secs == pytest.approx([1.15])


def test_stock_commits_at_its_floor_cutting_in_on_every_longer_pause():
    result = replay([HESITANT, FLUENT], None)
    assert result.cut_ins == 1
    assert result.started == 0
    assert result.latencies_secs == pytest.approx([1.1, 1.1])
    assert result.saved_secs == pytest.approx([0.0, 0.0])


def test_a_blip_without_words_keeps_the_speculation():
    result = replay([BLIP], TuneSetting(0.0, 0.6, 1.5))
    # Kept through the cough; the commit rule restarts at its end (1.5) and fires at 2.1.
    assert (result.adopted, result.withdrawn, result.cut_ins) == (1, 0, 0)
    assert result.latencies_secs == pytest.approx([0.6])


def late_final(matched: bool) -> ReplayTurn:
    final = ReplayPause(0.9, resumed=False, final_secs=0.15, final_matched=matched)
    return ReplayTurn("s", (0,), (final,), readiness_secs=0.5)


def test_a_final_that_says_what_the_interim_said_keeps_the_speculation():
    result = replay([late_final(True)], TuneSetting(0.0, 0.6, 1.5))
    assert (result.started, result.adopted, result.withdrawn) == (1, 1, 0)
    assert result.latencies_secs == pytest.approx([0.6])


def test_a_final_with_more_words_re_speculates_and_the_commit_waits_for_the_new_answer():
    result = replay([late_final(False)], TuneSetting(0.0, 0.6, 1.5))
    # Speculated on the interim at the VAD stop; the final 0.15 s later extends it: withdrawn,
    # speculated again, ready 0.5 s after that, which the held commit waits for.
    assert (result.started, result.adopted, result.withdrawn) == (2, 1, 1)
    assert result.latencies_secs == pytest.approx([0.65])


def test_the_commit_rule_waits_for_a_transcript_that_comes_after_its_floor():
    late_words = ReplayTurn(
        "s",
        (0,),
        (ReplayPause(0.9, resumed=False),),
        readiness_secs=0.5,
        first_speech_secs=1.0,
        first_words_secs=1.5,  # 0.5 s after the VAD stop
    )
    result = replay([late_words], TuneSetting(0.0, 0.3, 1.5))
    # No text at the 0.3 s floor: the rule fires with the words, the speculation starts then
    # and the commit waits for its answer.
    assert (result.started, result.adopted) == (1, 1)
    assert result.latencies_secs == pytest.approx([1.0])


def test_a_recorded_cut_in_is_replayed_as_one_turn_the_user_went_on_in():
    first = TurnRecord(
        session_id="s",
        turn=0,
        pauses=[PauseEntry(600.0, resumed=False)],
        speech_after_commit_ms=300.0,
        speculations=[SpeculationEntry(index=0, outcome="adopted", ready_ms=500.0)],
    )
    second = TurnRecord(
        session_id="s",
        turn=1,
        pauses=[PauseEntry(900.0, resumed=False)],
        speculations=[SpeculationEntry(index=1, outcome="adopted", ready_ms=400.0)],
    )
    old = TurnRecord(session_id="s", turn=2)
    (turn,), notes = replay_turns(TimingReport(turns=[first, second, old]))

    assert turn.turns == (0, 1)
    assert turn.pauses[0].silence_secs == pytest.approx(0.9)
    assert turn.pauses[0].resumed
    # Each part keeps its own record's readiness: the cut-in came when the first was ready.
    assert turn.pauses[0].readiness_secs == 0.5
    assert turn.pauses[1] == ReplayPause(0.9, resumed=False, readiness_secs=0.4)
    assert turn.readiness_secs == 0.4
    assert any("1 turn records without pauses" in n for n in notes)
    assert any("1 recorded cut-ins" in n for n in notes)


def test_the_recommendation_is_the_fastest_setting_within_the_cut_in_and_cancel_bounds():
    def result(setting, latency, cut_ins, adopted, withdrawn):
        r = ReplayResult(setting=setting, turns=1, latencies_secs=[latency])
        r.cut_ins, r.adopted, r.withdrawn, r.counted_withdrawn = (
            cut_ins,
            adopted,
            withdrawn,
            withdrawn,
        )
        return r

    current = result(TuneSetting(0.0, 0.6, 1.5), 0.9, 1, 3, 1)
    faster_but_cuts_in = result(TuneSetting(0.0, 0.3, 1.5), 0.6, 2, 3, 1)
    faster_but_wasteful = result(TuneSetting(0.0, 0.45, 1.0), 0.7, 1, 1, 1)
    faster = result(TuneSetting(0.1, 0.45, 1.5), 0.8, 0, 2, 1)
    results = [current, faster_but_cuts_in, faster_but_wasteful, faster]
    setting, rule = recommend(results, current, band_high=0.4)
    assert setting == TuneSetting(0.1, 0.45, 1.5)
    assert "cut-ins <= current (1)" in rule

    only_worse = [current, faster_but_cuts_in]
    assert recommend(only_worse, current, band_high=0.4)[0] == current.setting


def test_the_grid_marks_the_recorded_setting_as_current():
    summary = SessionSummary(
        session_id="s",
        debounce_initial_secs=0.1,
        debounce_min_secs=0.0,
        commit_floor_secs=0.8,
        resume_backoff=2.0,
    )
    result = tune([FLUENT, HESITANT], sessions=[summary], delays=[0.0], floors=[0.6], backoffs=[1])
    assert result.current == TuneSetting(0.1, 0.8, 2.0)
    assert {r.setting for r in result.results} == {TuneSetting(0.0, 0.6, 1.0), result.current}


# -- the command --------------------------------------------------------------------------------


def write_records(path, records: list[TurnRecord]):
    lines = [json.dumps(r.to_dict()) for r in records]
    lines.append(json.dumps(SessionSummary(session_id="s").to_dict()))
    path.write_text("\n".join(lines) + "\n")


def recorded_session() -> list[TurnRecord]:
    def turn(n: int, pauses: list[PauseEntry]) -> TurnRecord:
        spec = SpeculationEntry(
            index=n, outcome="adopted", ready_ms=500.0, prompt_tokens=300, completion_tokens=40
        )
        return TurnRecord(session_id="s", turn=n, pauses=pauses, speculations=[spec])

    final = PauseEntry(900.0, resumed=False)
    return [
        turn(0, [final]),
        turn(1, [PauseEntry(700.0, True, 1000.0, 200.0), final]),
        turn(2, [final]),
    ]


def test_tune_prints_the_grid_and_writes_a_png_and_a_loadable_profile(tmp_path):
    path = tmp_path / "turns.jsonl"
    write_records(path, recorded_session())
    png, profile_path = tmp_path / "tune.png", tmp_path / "profile.json"
    result = runner.invoke(
        app,
        ["tune", str(path), "--png", str(png), "--write-profile", str(profile_path)]
        + ["--delays", "0,0.2", "--floors", "0.6,0.8", "--backoffs", "1.5"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "current" in result.output and "recommended" in result.output
    assert png.stat().st_size > 0
    profile = TurnTakingProfile.from_json(profile_path.read_text())
    planner = SpeculationPlanner(SpeculativeTurnParams())
    warm_start(planner, profile)
    assert planner.debounce.delay_secs == profile.speculation_delay_secs
    assert profile.turns_seen >= 3


def test_tune_refuses_a_file_that_is_not_json_in_one_line(tmp_path):
    path = tmp_path / "turns.jsonl"
    path.write_text("{not json\n")
    result = runner.invoke(app, ["tune", str(path)])
    assert result.exit_code == 1
    assert result.stderr.strip().count("\n") == 0
    assert f"{path}:1:" in result.stderr and "not JSON" in result.stderr


def test_tune_says_an_older_file_lacks_the_pauses(tmp_path):
    path = tmp_path / "turns.jsonl"
    data = TurnRecord(session_id="s", turn=0).to_dict()
    del data["pauses"]
    path.write_text(json.dumps(data) + "\n")
    result = runner.invoke(app, ["tune", str(path)])
    assert result.exit_code == 1
    assert "hold no pauses" in result.stderr and "Traceback" not in result.output


def test_tune_refuses_a_bad_grid(tmp_path):
    path = tmp_path / "turns.jsonl"
    write_records(path, recorded_session())
    result = runner.invoke(app, ["tune", str(path), "--backoffs", "0.5"])
    assert result.exit_code == 1
    assert "--backoffs" in result.stderr
