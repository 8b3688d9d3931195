"""The synchronous core, fed scripted timelines: exact stages, accounting, never negative."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipecat_speculative.metrics import (
    MOMENTS,
    STAGES,
    AnswerReadiness,
    LateAnswer,
    SpeculationResolved,
    TurnCompleted,
    TurnRecord,
    TurnTimingTracker,
)

from .sessions import ordinary_turn


def records(events) -> list[TurnRecord]:
    return [e.record for e in events if isinstance(e, TurnCompleted)]


def test_an_ordinary_turn_gives_exact_stages_from_the_real_end_of_speech():
    t = TurnTimingTracker(session_id="s")
    ordinary_turn(t)
    (record,) = records(t.drain())

    assert record.anchor == "end_of_speech"
    assert record.anchor_unix == 1_000.0
    assert record.moments_ms["vad_stop"] == 200.0
    assert record.moments_ms["commit"] == 800.0
    assert record.stages_ms == {
        "speech_to_llm_start": 802.0,
        "llm_first_token": 600.0,
        "first_sentence": 498.0,
        "llm_to_tts_start": 1.0,
        "tts_first_audio": 249.0,
        "playout": 20.0,
        "total": 2170.0,
        "turn_detection": 800.0,
        "after_commit": 1370.0,
        "rag": None,
        "playback": 1830.0,
    }
    assert record.answers == 1
    assert record.audio_secs == 1.5
    assert record.completion == "playback_done"
    assert (record.prompt_tokens, record.completion_tokens, record.tts_characters) == (200, 30, 42)
    assert record.user_text == "what time is it"
    assert record.speculative is False
    assert record.clamped == {}


def test_the_six_work_stages_tile_the_total():
    t = TurnTimingTracker(session_id="s")
    ordinary_turn(t)
    (record,) = records(t.drain())
    work = [
        "speech_to_llm_start",
        "llm_first_token",
        "first_sentence",
        "llm_to_tts_start",
        "tts_first_audio",
        "playout",
    ]
    assert sum(record.stages_ms[s] for s in work) == pytest.approx(record.stages_ms["total"])
    assert record.stages_ms["turn_detection"] + record.stages_ms["after_commit"] == pytest.approx(
        record.stages_ms["total"]
    )


def test_an_adopted_speculation_is_timed_from_its_start_not_from_its_release():
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.inference_started(1.4, key=7, speculative=True, text="what's the weather")
    t.llm_processing_started(1.401, llm="llm", key=7)
    t.llm_ttfb(2.0, llm="llm", value_secs=0.599)
    t.user_turn_committed(2.3)
    # The gate releases the held text at the commit; the TTS sees it from there.
    t.first_sentence(2.31)
    t.tts_started(2.311, context_id="c")
    t.tts_audio(2.56, context_id="c")
    t.audio_delivered(2.57, context_id="c", secs=1.0)
    t.bot_started_speaking(2.58)
    t.bot_stopped_speaking(4.0)
    events = t.drain()
    (record,) = records(events)

    assert record.speculative is True
    assert record.stages_ms["speech_to_llm_start"] == 401.0
    assert record.stages_ms["llm_first_token"] == 599.0
    assert record.stages_ms["turn_detection"] == 1300.0
    assert record.stages_ms["after_commit"] == 280.0
    assert record.stages_ms["total"] == 1580.0
    (spec,) = record.speculations
    assert (spec.outcome, spec.started_ms, spec.resolved_ms) == ("adopted", 400.0, 1300.0)
    assert spec.llm_first_token_ms == 600.0
    assert (record.speculations_adopted, record.speculations_withdrawn) == (1, 0)
    resolved = [e for e in events if isinstance(e, SpeculationResolved)]
    assert [(e.outcome, e.summary.hit_rate) for e in resolved] == [("adopted", 1.0)]


def test_withdrawals_are_accounted_with_wasted_tokens_and_tool_calls_do_not_count():
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.inference_started(1.4, key=1, speculative=True, text="so I was")
    t.llm_processing_started(1.401, llm="llm", key=1)
    t.speech_started(1.6)  # the user goes on
    t.speculation_withdrawn(1.65)
    t.llm_usage(llm="llm", prompt_tokens=120, completion_tokens=0)  # reported on cancel
    t.vad_stopped(2.5, stop_secs=0.2)
    t.inference_started(2.7, key=2, speculative=True, text="so I was thinking")
    t.llm_processing_started(2.701, llm="llm", key=2)
    t.llm_ttfb(2.9, llm="llm", value_secs=0.199)
    t.llm_usage(llm="llm", prompt_tokens=130, completion_tokens=12)
    t.speculation_withdrawn(3.0, by_llm=True)  # it wanted a tool call
    t.user_turn_committed(3.2)
    t.inference_started(3.21, key=3, speculative=False, text="so I was thinking")
    t.llm_processing_started(3.211, llm="llm", key=3)
    t.llm_ttfb(3.8, llm="llm", value_secs=0.589)
    t.session_ended(9.0)
    (record,) = records(t.drain())

    first, second = record.speculations
    assert (first.outcome, first.reason, first.counts_toward_cancel_rate) == (
        "withdrawn",
        None,
        True,
    )
    assert (second.outcome, second.reason, second.reason_source) == (
        "withdrawn",
        "tool_call",
        "frames",
    )
    assert second.counts_toward_cancel_rate is False
    # The first started in an earlier pause, before this turn's t0: clamped, and said so.
    assert first.started_ms == 0.0
    assert record.clamped["speculation[0].started"] == -900.0
    assert (record.wasted_prompt_tokens, record.wasted_completion_tokens) == (250, 12)
    assert record.stages_ms["speech_to_llm_start"] == 911.0
    assert record.completion == "session_end"

    summary = t.summary()
    assert (summary.speculations_started, summary.speculations_withdrawn) == (2, 2)
    assert summary.tool_call_withdrawals == 1
    assert summary.cancel_rate == 1.0  # 1 counted withdrawal out of 1 counted outcome
    assert summary.hit_rate == 0.0
    assert summary.wasted_prompt_tokens == 250


def test_the_bogus_ttfb_emitted_on_cancellation_is_ignored():
    t = TurnTimingTracker(session_id="s")
    t.vad_stopped(1.2, stop_secs=0.2)
    t.inference_started(1.4, key=1, speculative=True, text="hmm")
    t.llm_processing_started(1.401, llm="llm", key=1)
    t.speculation_withdrawn(1.65)
    # stop_all_metrics() on the cancel path reports the time until the cancel as a TTFB.
    t.llm_ttfb(1.651, llm="llm", value_secs=0.25)
    t.vad_stopped(2.2, stop_secs=0.2)
    t.user_turn_committed(2.6)
    t.inference_started(2.601, key=2, speculative=False)
    t.llm_processing_started(2.602, llm="llm", key=2)
    t.llm_ttfb(3.2, llm="llm", value_secs=0.598)
    t.session_ended(5.0)
    (record,) = records(t.drain())

    assert record.speculations[0].llm_first_token_ms is None
    assert record.speculations[0].ignored_ttfb_ms == 250.0
    assert record.ignored_ttfb == 1
    assert record.stages_ms["llm_first_token"] == 598.0
    assert t.summary().ignored_ttfb == 1


def test_a_ttfb_after_an_interruption_is_ignored_too():
    t = TurnTimingTracker(session_id="s")
    t.vad_stopped(1.2, stop_secs=0.2)
    t.user_turn_committed(1.8)
    t.inference_started(1.81, key=1, speculative=False)
    t.llm_processing_started(1.82, llm="llm", key=1)
    t.interruption(2.0)
    t.llm_ttfb(2.001, llm="llm", value_secs=0.18)
    (record,) = records(t.drain())
    assert record.completion == "interrupted"
    assert record.answers == 0
    assert record.moments_ms["llm_first_token"] is None
    assert t.summary().ignored_ttfb == 1


def test_answer_readiness_uses_the_speculations_own_first_token_and_the_sessions_tts():
    t = TurnTimingTracker(session_id="s")
    ordinary_turn(t)  # first sentence 498 ms after first token, TTS first audio 249 ms
    t.drain()
    t.speech_started(10.0)
    t.vad_stopped(11.2, stop_secs=0.2)
    t.inference_started(11.4, key=9, speculative=True, text="and tomorrow")
    t.llm_processing_started(11.41, llm="llm", key=9)
    t.llm_ttfb(12.0, llm="llm", value_secs=0.59)
    t.user_turn_committed(12.5)
    readiness = [e for e in t.drain() if isinstance(e, AnswerReadiness)]
    (r,) = readiness
    assert r.llm_first_token_secs == pytest.approx(0.6)
    assert r.first_sentence_secs == pytest.approx(0.498)
    assert r.tts_first_audio_secs == pytest.approx(0.249)
    assert r.secs == pytest.approx(1.347)
    assert r.own_tts is False


def test_a_held_answers_first_sentence_is_not_taken_as_the_aggregation_time():
    t = TurnTimingTracker(session_id="s")

    def speculative_turn(base: float, key: int, *, first_token: float, commit: float):
        t.speech_started(base)
        t.vad_stopped(base + 1.2, stop_secs=0.2)
        t.inference_started(base + 1.4, key=key, speculative=True, text="q")
        t.llm_processing_started(base + 1.41, llm="llm", key=key)
        t.llm_ttfb(base + first_token, llm="llm", value_secs=0.5)
        t.user_turn_committed(base + commit)
        sentence = max(base + first_token, base + commit) + 0.1
        t.first_sentence(sentence)
        t.tts_started(sentence + 0.001, context_id=f"c{key}")
        t.tts_audio(sentence + 0.251, context_id=f"c{key}")
        t.bot_started_speaking(sentence + 0.27)
        t.bot_stopped_speaking(sentence + 1.0)

    # Not held (the first token came after the commit): 100 ms of aggregation is measured.
    speculative_turn(0.0, 1, first_token=2.0, commit=1.8)
    # Held (first token before the commit): the 0.6 s wait until the release is not aggregation.
    speculative_turn(10.0, 2, first_token=1.9, commit=2.5)
    # The next speculation's readiness still uses the 100 ms, not the 700 ms of the held one.
    speculative_turn(20.0, 3, first_token=1.9, commit=2.5)
    readiness = [e for e in t.drain() if isinstance(e, AnswerReadiness)]
    assert len(readiness) == 2
    assert readiness[-1].first_sentence_secs == pytest.approx(0.1)
    assert readiness[-1].tts_first_audio_secs == pytest.approx(0.25)


def test_answer_readiness_is_not_guessed_before_any_tts_was_measured():
    t = TurnTimingTracker(session_id="s")
    t.vad_stopped(1.2, stop_secs=0.2)
    t.inference_started(1.4, key=1, speculative=True, text="hi")
    t.llm_processing_started(1.41, llm="llm", key=1)
    t.llm_ttfb(2.0, llm="llm", value_secs=0.59)
    t.user_turn_committed(2.1)
    assert not [e for e in t.drain() if isinstance(e, AnswerReadiness)]


def test_a_stale_answer_spoken_next_to_the_fresh_one_counts_two_answers():
    t = TurnTimingTracker(session_id="s")
    t.vad_stopped(1.2, stop_secs=0.2)
    t.user_turn_committed(1.8)
    t.inference_started(1.81, key=1, speculative=False)
    t.audio_delivered(2.5, context_id="stale", secs=0.5)
    t.bot_started_speaking(2.51)
    t.audio_delivered(3.0, context_id="fresh", secs=0.5)
    t.bot_stopped_speaking(3.6)
    (record,) = records(t.drain())
    assert record.answers == 2
    assert t.summary().multi_answer_turns == 1


def test_audio_of_another_response_after_the_turn_closed_is_a_late_answer():
    t = TurnTimingTracker(session_id="s")
    ordinary_turn(t, ctx="c1")
    t.drain()
    t.audio_delivered(5.5, context_id="c1", secs=0.2)  # more of the same answer: not late
    t.audio_delivered(5.52, context_id="hello", secs=0.2)  # speech no inference asked for
    t.tts_started(5.55, context_id="c2")  # a second response of the turn's inference
    t.audio_delivered(5.6, context_id="c2", secs=0.2)
    late = [e for e in t.drain() if isinstance(e, LateAnswer)]
    assert late == [LateAnswer(turn=0, key="c2")]
    assert t.summary().late_answers == 1


def test_a_new_commit_supersedes_a_turn_still_waiting_for_playback_to_end():
    t = TurnTimingTracker(session_id="s", playback_margin_secs=None)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.user_turn_committed(1.8)
    t.inference_started(1.81, key=1, speculative=False)
    t.bot_started_speaking(2.5)
    t.speech_started(3.0)
    t.vad_stopped(4.2, stop_secs=0.2)
    t.user_turn_committed(4.8)
    first = records(t.drain())
    assert [(r.turn, r.completion, r.interrupted) for r in first] == [(0, "superseded", True)]


def test_a_greeting_inference_belongs_to_no_turn():
    t = TurnTimingTracker(session_id="s")
    t.inference_started(0.1, key=1, speculative=False, text=None)  # the bot greets first
    t.llm_processing_started(0.11, llm="llm", key=1)
    t.llm_ttfb(0.5, llm="llm", value_secs=0.39)
    t.speech_started(2.0)
    t.vad_stopped(3.2, stop_secs=0.2)
    t.user_turn_committed(3.8)
    t.inference_started(3.81, key=2, speculative=False, text="hi")
    t.llm_processing_started(3.82, llm="llm", key=2)
    t.llm_ttfb(4.4, llm="llm", value_secs=0.58)
    t.session_ended(5.0)
    (record,) = records(t.drain())
    assert record.moments_ms["llm_request"] == 820.0
    assert record.stages_ms["llm_first_token"] == 580.0


def test_a_turn_without_vad_is_anchored_at_its_commit_and_has_no_t0_stages():
    t = TurnTimingTracker(session_id="s")
    t.user_turn_committed(2.0, commit_unix=5_000.0)
    t.inference_started(2.01, key=1, speculative=False)
    t.llm_processing_started(2.02, llm="llm", key=1)
    t.bot_started_speaking(3.0)
    t.bot_stopped_speaking(4.0)
    (record,) = records(t.drain())
    assert record.anchor == "commit"
    assert record.anchor_unix == 5_000.0
    assert record.stages_ms["total"] is None
    assert record.stages_ms["after_commit"] == 1000.0
    assert record.moments_ms["llm_request"] == 20.0


def test_a_vad_stop_that_arrives_after_its_commit_still_sets_t0():
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.user_turn_committed(1.25)
    t.vad_stopped(1.2, stop_secs=0.2)  # decided before the commit, observed after it
    t.bot_started_speaking(2.0)
    t.bot_stopped_speaking(3.0)
    (record,) = records(t.drain())
    assert record.anchor == "end_of_speech"
    assert record.stages_ms["turn_detection"] == 250.0
    assert record.stages_ms["total"] == 1000.0


def test_rag_moments_are_recorded_and_a_prefetch_before_t0_is_clamped():
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.rag(0.7, "start")  # prefetch on an interim transcript, before the end of speech
    t.vad_stopped(1.2, stop_secs=0.2)
    t.rag(1.3, "done")
    t.user_turn_committed(1.8)
    t.session_ended(2.0)
    (record,) = records(t.drain())
    assert record.moments_ms["rag_start"] == 0.0
    assert record.clamped == {"moment:rag_start": -300.0}
    assert record.stages_ms["rag"] == 600.0


def test_the_playback_watchdog_closes_a_turn_whose_playback_never_reports():
    t = TurnTimingTracker(session_id="s", playback_margin_secs=1.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.user_turn_committed(1.8)
    t.inference_started(1.81, key=1, speculative=False)
    t.audio_delivered(2.4, context_id="c", secs=2.0)
    t.bot_started_speaking(2.5)
    assert t.playback_deadline == pytest.approx(5.5)  # 2.5 + 2.0 s of audio + 1.0 s margin
    assert t.poll(5.4) is False
    assert t.poll(5.5) is True
    (record,) = records(t.drain())
    assert record.completion == "playback_watchdog"
    assert record.playback_watchdog_fired is True
    assert record.watchdog_waited_secs == pytest.approx(3.0)
    assert t.summary().playback_watchdog_fired == 1


def speaking_with_tts_open() -> TurnTimingTracker:
    """A committed turn whose answer plays 2 s of audio from 2.5 s, its TTS context still open."""
    t = TurnTimingTracker(session_id="s", playback_margin_secs=1.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.user_turn_committed(1.8)
    t.inference_started(1.81, key=1, speculative=False)
    t.llm_processing_started(1.82, llm="llm", key=1)
    t.tts_started(2.3, context_id="c")
    t.audio_delivered(2.4, context_id="c", secs=2.0)
    t.bot_started_speaking(2.5)
    return t


def test_the_playback_watchdog_waits_for_an_answer_still_being_generated():
    # A slow LLM leaves a gap between the first sentence's audio and the next: the bot is still
    # answering, not a client that never reports.
    t = speaking_with_tts_open()
    assert t.playback_deadline == pytest.approx(15.5)  # + 10 s stall while generating
    assert t.poll(6.0) is False
    t.audio_delivered(7.0, context_id="c", secs=1.0)
    t.tts_stopped(7.1, context_id="c")
    assert t.playback_deadline == pytest.approx(9.0)  # last chunk ends at 8.0, + 1.0 s margin
    assert t.poll(8.9) is False
    assert t.poll(9.0) is True
    (record,) = records(t.drain())
    assert record.completion == "playback_watchdog"


def test_the_playback_watchdog_bounds_a_tts_that_never_stops():
    t = speaking_with_tts_open()
    assert t.poll(15.4) is False
    assert t.poll(15.5) is True


def test_strategy_reasons_override_and_tool_calls_leave_the_cancel_rate():
    t = TurnTimingTracker(session_id="s")
    t.vad_stopped(1.2, stop_secs=0.2)
    # The strategy's event may come before the frame is observed: it waits to be paired.
    t.annotate_speculation_started(strategy_id=41, text="so I was", delay_secs=0.4)
    t.annotate_speculation_withdrawn(strategy_id=41, reason="resumed")
    t.inference_started(1.4, key=1, speculative=True, text="So I  was")
    t.speculation_withdrawn(1.6)
    t.inference_started(2.4, key=2, speculative=True, text="so I was going")
    t.annotate_speculation_started(strategy_id=42, text="so I was going", delay_secs=0.4)
    t.speculation_withdrawn(2.6)
    t.annotate_speculation_withdrawn(strategy_id=42, reason="tool_call")
    t.user_turn_committed(3.0)
    t.session_ended(4.0)
    (record,) = records(t.drain())
    assert [(s.strategy_id, s.reason, s.reason_source) for s in record.speculations] == [
        (41, "resumed", "strategy"),
        (42, "tool_call", "strategy"),
    ]
    assert record.speculations[0].delay_secs == 0.4
    summary = t.summary()
    assert (summary.tool_call_withdrawals, summary.cancel_rate) == (1, 1.0)
    assert summary.window_samples == 1
    assert summary.debounce_secs == 0.4


# ----------------------------------------------------------------- property


_EVENT_NAMES = (
    "speech_started",
    "vad_stopped",
    "user_turn_started",
    "inference_spec",
    "inference",
    "llm_start",
    "ttfb",
    "withdraw",
    "withdraw_llm",
    "commit",
    "first_sentence",
    "tts_started",
    "tts_audio",
    "delivered",
    "bot_started",
    "bot_stopped",
    "interruption",
    "rag_start",
    "rag_done",
    "usage",
    "poll",
)


def _apply(t: TurnTimingTracker, name: str, at: float, n: int):
    key = n % 4
    if name == "speech_started":
        t.speech_started(at)
    elif name == "vad_stopped":
        t.vad_stopped(at, stop_secs=0.2)
    elif name == "user_turn_started":
        t.user_turn_started(at)
    elif name == "inference_spec":
        t.inference_started(at, key=key, speculative=True, text="x")
    elif name == "inference":
        t.inference_started(at, key=key, speculative=False, text="x")
    elif name == "llm_start":
        t.llm_processing_started(at, llm="llm", key=key)
    elif name == "ttfb":
        t.llm_ttfb(at, llm="llm", value_secs=0.1)
    elif name == "withdraw":
        t.speculation_withdrawn(at)
    elif name == "withdraw_llm":
        t.speculation_withdrawn(at, by_llm=True)
    elif name == "commit":
        t.user_turn_committed(at)
    elif name == "first_sentence":
        t.first_sentence(at)
    elif name == "tts_started":
        t.tts_started(at, context_id=f"c{key}")
    elif name == "tts_audio":
        t.tts_audio(at, context_id=f"c{key}")
    elif name == "delivered":
        t.audio_delivered(at, context_id=f"c{key}", secs=0.1)
    elif name == "bot_started":
        t.bot_started_speaking(at)
    elif name == "bot_stopped":
        t.bot_stopped_speaking(at)
    elif name == "interruption":
        t.interruption(at)
    elif name == "rag_start":
        t.rag(at, "start")
    elif name == "rag_done":
        t.rag(at, "done")
    elif name == "usage":
        t.llm_usage(llm="llm", prompt_tokens=3, completion_tokens=2)
    elif name == "poll":
        t.poll(at)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(_EVENT_NAMES), st.floats(0.0, 10.0, allow_nan=False)),
        max_size=60,
    )
)
def test_no_moment_or_stage_is_ever_negative_whatever_the_order(events):
    t = TurnTimingTracker(session_id="p", playback_margin_secs=0.5)
    for n, (name, at) in enumerate(events):
        _apply(t, name, at, n)
    t.session_ended(10.0)
    summary = None
    for event in t.drain():
        if isinstance(event, TurnCompleted):
            r = event.record
            assert set(r.moments_ms) == set(MOMENTS)
            assert set(r.stages_ms) == set(STAGES)
            for value in [*r.moments_ms.values(), *r.stages_ms.values()]:
                assert value is None or value >= 0
            for s in r.speculations:
                for value in (s.started_ms, s.resolved_ms, s.llm_first_token_ms):
                    assert value is None or value >= 0
            assert all(v < 0 for v in r.clamped.values())
            assert r.answers >= 0
            summary = event.summary
    if summary is not None:
        for rate in (summary.cancel_rate, summary.window_cancel_rate, summary.hit_rate):
            assert rate is None or 0.0 <= rate <= 1.0


def test_answer_readiness_is_not_reported_while_the_first_sentence_time_is_unknown():
    """A session of held (adopted) answers never measures a first sentence: no readiness then."""
    t = TurnTimingTracker(session_id="s")
    t.speech_started(0.0)
    t.vad_stopped(1.2, stop_secs=0.2)
    t.inference_started(1.4, key=1, speculative=True, text="q")
    t.llm_processing_started(1.41, llm="llm", key=1)
    t.llm_ttfb(1.9, llm="llm", value_secs=0.5)
    t.user_turn_committed(2.5)  # held until here: its first sentence is not its own
    t.first_sentence(2.6)
    t.tts_started(2.601, context_id="c1")
    t.tts_audio(2.85, context_id="c1")
    t.bot_started_speaking(2.87)
    t.bot_stopped_speaking(3.5)
    t.speech_started(10.0)
    t.vad_stopped(11.2, stop_secs=0.2)
    t.inference_started(11.4, key=2, speculative=True, text="q2")
    t.llm_processing_started(11.41, llm="llm", key=2)
    t.llm_ttfb(11.9, llm="llm", value_secs=0.5)
    t.user_turn_committed(12.5)
    assert [e for e in t.drain() if isinstance(e, AnswerReadiness)] == []
