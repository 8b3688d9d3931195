"""The decision core, without a pipeline: scripted cases and random interleavings."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy, NormalizedMatch

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import (
    AdoptSpeculation,
    ArmTimer,
    CancelTimer,
    FinalizeCommit,
    RunInference,
    SpeculationAccounted,
    SpeculationPlanner,
    SpeculativeTurnParams,
    StartSpeculation,
    TimerKind,
    TurnCommitted,
    WithdrawSpeculation,
)


def planner(**kw) -> SpeculationPlanner:
    debounce = kw.pop("debounce", DebounceParams(initial_secs=0.2))
    return SpeculationPlanner(SpeculativeTurnParams(debounce=debounce, **kw))


def kinds(actions):
    return [type(a).__name__ for a in actions]


def speak(p: SpeculationPlanner, t: float, text: str):
    p.turn_started(t)
    p.vad_started(t)
    p.final_transcript(t + 0.5, text)
    return p.vad_stopped(t + 1.0)


def test_speculates_after_the_delay_and_adopts_a_matching_commit():
    p = planner()
    assert speak(p, 0.0, "what's the weather") == [ArmTimer(TimerKind.DEBOUNCE, 0.2)]
    actions = p.timer_fired(1.2, TimerKind.DEBOUNCE)
    assert kinds(actions) == ["StartSpeculation", "ArmTimer"]
    record = actions[0].record
    assert record.text == "what's the weather" and record.delay_secs == 0.2
    actions = p.commit(1.6)
    assert kinds(actions) == ["CancelTimer", "AdoptSpeculation", "TurnCommitted"]
    assert actions[-1].commit.adopted is record and record.adopted
    assert p.cancel_rate == 0.0


def test_waits_for_text_when_the_delay_ends_before_the_transcript():
    p = planner()
    p.turn_started(0)
    p.vad_started(0)
    p.vad_stopped(1.0)
    assert p.timer_fired(1.2, TimerKind.DEBOUNCE) == []
    actions = p.final_transcript(1.3, "hello")
    assert kinds(actions) == ["StartSpeculation", "ArmTimer"]


def test_a_longer_final_transcript_re_speculates():
    p = planner()
    speak(p, 0, "I want")
    first = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    actions = p.final_transcript(1.3, "to book a table")
    assert kinds(actions) == ["CancelTimer", "WithdrawSpeculation", "StartSpeculation", "ArmTimer"]
    assert first.withdrawal_reason is WithdrawalReason.EXTENDED
    assert actions[2].record.text == "I want to book a table"


def test_a_final_that_only_adds_punctuation_does_not_re_speculate():
    p = planner()
    speak(p, 0, "hello there")
    p.timer_fired(1.2, TimerKind.DEBOUNCE)
    assert p.final_transcript(1.3, ".") == []
    assert p.speculation is not None and p.text == "hello there ."


def test_resumed_speech_with_new_words_withdraws():
    p = planner()
    speak(p, 0, "I want")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    assert kinds(p.vad_started(1.5)) == ["ArmTimer"]  # resume timer, not yet a withdrawal
    actions = p.interim_transcript(1.7, "to")
    assert kinds(actions) == ["CancelTimer", "CancelTimer", "WithdrawSpeculation"]
    assert record.withdrawal_reason is WithdrawalReason.RESUMED
    assert p.debounce.state.samples == 1


def test_a_noise_blip_without_words_keeps_the_speculation():
    p = planner()
    speak(p, 0, "book it")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    p.vad_started(1.5)
    assert kinds(p.vad_stopped(1.8)) == ["CancelTimer"]
    assert p.speculation is record
    assert kinds(p.commit(2.5))[-2:] == ["AdoptSpeculation", "TurnCommitted"]


def test_resumed_speech_that_lasts_withdraws_even_without_words():
    p = planner(resume_withdraw_secs=0.5)
    speak(p, 0, "book it")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    p.vad_started(1.5)
    actions = p.timer_fired(2.0, TimerKind.RESUME)
    assert kinds(actions) == ["CancelTimer", "WithdrawSpeculation"]
    assert record.withdrawal_reason is WithdrawalReason.RESUMED


class TogglePolicy(EagerMatchPolicy):
    verdict = True

    def matches(self, eager: str, final: str) -> bool:
        return self.verdict


def test_mismatch_at_commit_withdraws_and_runs_inference():
    policy = TogglePolicy()
    p = SpeculationPlanner(SpeculativeTurnParams(), match_policy=policy)
    speak(p, 0, "book")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    assert p.final_transcript(1.3, "a table") == []  # the policy tolerated it then
    policy.verdict = False
    actions = p.commit(1.5)
    assert kinds(actions) == ["CancelTimer", "WithdrawSpeculation", "RunInference", "TurnCommitted"]
    assert record.withdrawal_reason is WithdrawalReason.MISMATCH
    assert actions[-1].commit.text == "book a table" and actions[-1].commit.adopted is None


def test_tool_call_withdrawal_is_not_counted_and_blocks_the_turn():
    p = planner()
    speak(p, 0, "what's the weather")
    p.timer_fired(1.2, TimerKind.DEBOUNCE)
    actions = p.speculation_withdrawn_elsewhere(1.4)
    assert kinds(actions) == ["CancelTimer", "WithdrawSpeculation"]
    assert actions[-1].record.withdrawal_reason is WithdrawalReason.TOOL_CALL
    assert p.cancel_rate is None and p.debounce.state.samples == 0
    p.vad_started(1.5)
    p.final_transcript(1.6, "in Paris")
    p.vad_stopped(1.7)
    assert p.timer_fired(1.9, TimerKind.DEBOUNCE) == []
    assert kinds(p.commit(2.5)) == ["RunInference", "TurnCommitted"]


def test_a_failed_speculation_is_withdrawn_counted_and_not_retried_on_the_same_text():
    p = planner()
    speak(p, 0, "what's the weather")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    actions = p.speculation_failed(1.4)
    assert kinds(actions) == ["CancelTimer", "WithdrawSpeculation"]
    assert record.withdrawal_reason is WithdrawalReason.FAILED
    assert p.cancel_rate == 1.0 and p.debounce.state.samples == 0
    p.vad_started(1.5)
    p.vad_stopped(1.7)
    assert p.timer_fired(1.9, TimerKind.DEBOUNCE) == []  # not the same text again
    assert kinds(p.commit(2.5)) == ["RunInference", "TurnCommitted"]
    assert p.speculation_failed(2.6) == []  # nothing in flight: nothing to do


def test_timeout_withdraws_and_does_not_retry_the_same_text():
    p = planner(speculation_timeout_secs=1.0)
    speak(p, 0, "hmm")
    p.timer_fired(1.2, TimerKind.DEBOUNCE)
    actions = p.timer_fired(2.2, TimerKind.TIMEOUT)
    assert kinds(actions) == ["WithdrawSpeculation"]
    p.vad_started(2.5)
    p.vad_stopped(2.7)
    assert p.timer_fired(2.9, TimerKind.DEBOUNCE) == []


def test_the_per_turn_cap_and_the_utterance_length_bound_hold():
    p = planner(max_speculations_per_turn=1)
    speak(p, 0, "one")
    assert p.timer_fired(1.2, TimerKind.DEBOUNCE)
    p.final_transcript(1.3, "two")  # extended: withdraws, cannot start a second
    assert p.speculation is None
    long = planner(max_utterance_words=3)
    speak(long, 0, "one two three four")
    assert long.timer_fired(1.2, TimerKind.DEBOUNCE) == []


def resume_with_words(p: SpeculationPlanner, t: float, words: str):
    """The user resumes at ``t`` and a transcript confirms it; then pauses again at ``t + 1``."""
    p.vad_started(t)
    p.interim_transcript(t + 0.1, words)
    p.final_transcript(t + 0.5, words)
    return p.vad_stopped(t + 1.0)


def test_each_resumption_in_a_turn_backs_off_the_next_speculation():
    p = planner(resume_backoff=2.0)
    speak(p, 0, "I want")
    p.timer_fired(1.2, TimerKind.DEBOUNCE)
    assert resume_with_words(p, 1.5, "to book") == [ArmTimer(TimerKind.DEBOUNCE, 0.4)]
    assert p.timer_fired(2.9, TimerKind.DEBOUNCE)[0].record.delay_secs == 0.4
    assert resume_with_words(p, 3.0, "a table") == [ArmTimer(TimerKind.DEBOUNCE, 0.8)]
    p.timer_fired(4.8, TimerKind.DEBOUNCE)
    # Bounded by the debounce ceiling (1.0 s by default).
    assert resume_with_words(p, 5.0, "for two") == [ArmTimer(TimerKind.DEBOUNCE, 1.0)]
    assert p.debounce.delay_secs == 0.2  # the session delay is the debounce's business
    p.commit(7.5)
    p.turn_stopped(7.5)
    # The next turn starts from the session delay again.
    assert speak(p, 10.0, "thanks") == [ArmTimer(TimerKind.DEBOUNCE, 0.2)]


def test_one_turn_of_thinking_aloud_does_not_move_the_session_delay():
    # Five withdrawals in one turn would fill min_samples=5 at 100 % cancelled; only the first
    # was made at the session delay, so the debounce has one sample and does not move.
    p = planner(resume_backoff=1.5)
    speak(p, 0, "so")
    t = 1.0
    for i in range(5):
        fired = p.timer_fired(t + p.speculation_delay_secs, TimerKind.DEBOUNCE)
        assert isinstance(fired[0], StartSpeculation)
        assert fired[0].record.backed_off is (i > 0)
        resume_with_words(p, t + 1.0, f"word{i}")
        t += 2.0
    assert sum(p.withdrawn.values()) == 5
    assert p.debounce.state.samples == 1 and p.debounce.delay_secs == 0.2
    without = planner(resume_backoff=1.0)
    speak(without, 0, "so")
    t = 1.0
    for i in range(5):
        without.timer_fired(t + 0.2, TimerKind.DEBOUNCE)
        resume_with_words(without, t + 1.0, f"word{i}")
        t += 2.0
    assert without.debounce.state.changes  # the same turn moves a debounce without backoff


def test_a_pause_that_ended_without_a_speculation_does_not_back_off():
    p = planner(resume_backoff=2.0)
    speak(p, 0, "I want")
    # Resumed before the delay ran out: nothing was spent, nothing to back off from.
    assert resume_with_words(p, 1.1, "to book") == [ArmTimer(TimerKind.DEBOUNCE, 0.2)]


def test_backoff_starts_from_a_floor_when_the_session_delay_is_zero():
    p = planner(resume_backoff=2.0, debounce=DebounceParams(initial_secs=0.0))
    speak(p, 0, "I want")
    p.timer_fired(1.0, TimerKind.DEBOUNCE)
    assert resume_with_words(p, 1.5, "to book") == [ArmTimer(TimerKind.DEBOUNCE, 0.2)]


def test_no_backoff_when_disabled():
    p = planner(resume_backoff=1.0)
    speak(p, 0, "I want")
    p.timer_fired(1.2, TimerKind.DEBOUNCE)
    assert resume_with_words(p, 1.5, "to book") == [ArmTimer(TimerKind.DEBOUNCE, 0.2)]


def test_backoff_keeps_a_speculation_for_the_final_pause_of_a_hesitant_turn():
    # Seven mid-thought pauses of 0.4 s, then the end: without backoff the per-turn cap (3 here)
    # runs out on the first three pauses and the final pause gets no speculation. With it, the
    # delay goes 0.2 -> 0.3 -> 0.45 s: the pauses stop costing inferences after two.
    def final_pause_speculates(backoff: float) -> bool:
        p = planner(resume_backoff=backoff, max_speculations_per_turn=3)
        speak(p, 0, "so")
        t = 1.0
        for i in range(7):
            if p.speculation_delay_secs < 0.4:
                p.timer_fired(t + p.speculation_delay_secs, TimerKind.DEBOUNCE)
            resume_with_words(p, t + 0.4, f"word{i}")
            t += 1.4
        actions = p.timer_fired(t + p.speculation_delay_secs, TimerKind.DEBOUNCE)
        return any(isinstance(a, StartSpeculation) for a in actions)

    assert not final_pause_speculates(1.0)
    assert final_pause_speculates(1.5)


def test_turn_end_by_the_watchdog_withdraws_the_open_speculation():
    p = planner()
    speak(p, 0, "hello")
    record = p.timer_fired(1.2, TimerKind.DEBOUNCE)[0].record
    actions = p.turn_stopped(6.0)
    assert "WithdrawSpeculation" in kinds(actions)
    assert record.withdrawal_reason is WithdrawalReason.TURN_ENDED
    assert p.text == ""


def test_stale_timers_are_ignored():
    p = planner()
    speak(p, 0, "hello")
    p.vad_started(1.1)
    assert p.timer_fired(1.2, TimerKind.DEBOUNCE) == []
    assert p.timer_fired(1.2, TimerKind.TIMEOUT) == []


# ---------------------------------------------------------------- random interleavings

EVENTS = st.sampled_from(
    [
        "vad_start",
        "vad_stop",
        "interim",
        "final",
        "fire",
        "commit",
        "request",
        "ready",
        "elsewhere",
        "turn_end",
    ]
)


@settings(max_examples=1500, deadline=None)
@given(
    script=st.lists(
        st.tuples(EVENTS, st.floats(0.0, 1.0), st.sampled_from(["a", "b c", "?", " ", "Hello"])),
        max_size=40,
    ),
    delay=st.floats(0.0, 1.0),
)
def test_invariants_hold_in_any_interleaving(script, delay):
    p = planner(
        debounce=DebounceParams(initial_secs=delay, min_samples=1), max_speculations_per_turn=3
    )
    match = NormalizedMatch()
    now = 0.0
    speaking = False
    armed: set[TimerKind] = set()
    open_record = None
    seen: set[int] = set()
    resolved: set[int] = set()
    starts_this_turn = 0
    p.turn_started(now)

    def apply(actions, *, committing=False):
        nonlocal open_record, starts_this_turn
        commit_outcomes = []
        finalize = [a for a in actions if isinstance(a, FinalizeCommit)]
        assert len(finalize) <= 1 and (not finalize or actions[-1] is finalize[0])
        assert not (finalize and speaking), "a held commit finalized while the user speaks"
        for a in actions:
            if isinstance(a, ArmTimer):
                armed.add(a.kind)
            elif isinstance(a, CancelTimer):
                assert a.kind in armed, "cancelled a timer that was not armed"
                armed.discard(a.kind)
            elif isinstance(a, StartSpeculation):
                assert open_record is None, "two speculations in flight"
                assert not speaking, "speculated while the user was speaking"
                assert a.record.text.strip() and a.record.text == p.speculation_text
                assert a.record.id not in seen
                seen.add(a.record.id)
                open_record = a.record
                starts_this_turn += 1
                assert starts_this_turn <= 3
            elif isinstance(a, (WithdrawSpeculation, SpeculationAccounted)):
                assert a.record is open_record and a.record.id not in resolved
                assert a.record.withdrawal_reason is not None
                resolved.add(a.record.id)
                open_record = None
            elif isinstance(a, AdoptSpeculation):
                assert committing and a.record.adopted
                resolved.add(a.record.id)
                open_record = None
                commit_outcomes.append(a)
            elif isinstance(a, RunInference):
                assert committing
                commit_outcomes.append(a)
            elif isinstance(a, TurnCommitted):
                assert committing
                if a.commit.adopted is not None:
                    assert match.matches(a.commit.adopted.text, a.commit.text)
        if committing:
            assert len(commit_outcomes) == 1, "a commit must adopt or run inference, exactly once"
            assert open_record is None
        if finalize:
            # The shell ends the turn the rule asked to end: that is the commit.
            assert not p.commit_held
            apply(p.commit(now), committing=True)

    for event, dt, text in script:
        now += dt
        if event == "vad_start" and not speaking:
            speaking = True
            apply(p.vad_started(now))
        elif event == "vad_stop" and speaking:
            speaking = False
            apply(p.vad_stopped(now))
        elif event == "interim":
            apply(p.interim_transcript(now, text))
        elif event == "final":
            apply(p.final_transcript(now, text))
        elif event == "fire" and armed:
            kind = sorted(armed, key=lambda k: k.value)[int(dt * 10) % len(armed)]
            armed.discard(kind)
            apply(p.timer_fired(now, kind))
        elif event == "commit" and not speaking:
            apply(p.commit(now), committing=True)
        elif event == "request" and not speaking:
            apply(p.commit_requested(now))
        elif event == "ready":
            stage = SpeculationStage.STARTED if dt < 0.3 else SpeculationStage.FIRST_SENTENCE
            answered = p.speculation.text if p.speculation is not None and dt < 0.8 else text
            apply(p.speculation_progress(now, stage, answered))
        elif event == "elsewhere":
            apply(p.speculation_withdrawn_elsewhere(now))
        elif event == "turn_end" and not speaking:
            apply(p.turn_stopped(now))
            assert open_record is None and not armed
            starts_this_turn = 0
            p.turn_started(now)
        assert (open_record is None) == (p.speculation is None)

    withdrawn = sum(p.withdrawn.values())
    assert p.started == p.adopted + withdrawn + (1 if open_record else 0)
    apply(p.turn_stopped(now + 1))
    assert open_record is None and not armed


FLUX_EVENTS = st.sampled_from(["start", "cancel", "adopt", "request", "ready", "turn_end"])


@settings(max_examples=int(os.environ.get("PLANNER_FLUX_EXAMPLES", "500")), deadline=None)
@given(
    script=st.lists(
        st.tuples(FLUX_EVENTS, st.floats(0.0, 1.0), st.sampled_from(["a", "b c", "Hello"])),
        max_size=30,
    )
)
def test_flux_bets_are_each_resolved_once_and_never_two_at_a_time(script):
    """With Flux the commit rule bets itself; the planner accounts, and withdraws a bet it replaces.

    A bet open when the next one starts was never withdrawn in the pipeline (the service's
    withdrawal overtook it): the planner must withdraw it for real (``WithdrawSpeculation``,
    which the shell broadcasts), or the commit would release both answers.
    """
    p = planner(own_speculation=False)
    now = 0.0
    open_record = None
    resolved: set[int] = set()
    p.turn_started(now)
    for event, dt, text in script:
        now += dt
        if event == "start":
            actions = p.external_speculation_started(now, text)
            withdrawn = [a for a in actions if isinstance(a, WithdrawSpeculation)]
            assert [a.record for a in withdrawn] == ([open_record] if open_record else [])
            assert not any(isinstance(a, SpeculationAccounted) for a in actions)
            (start,) = [a for a in actions if isinstance(a, StartSpeculation)]
            resolved.update(a.record.id for a in withdrawn)
            open_record = start.record
        elif event == "cancel":
            actions = p.speculation_withdrawn_elsewhere(now)
            if open_record is not None:
                # Accounted once; the withdrawal may also move the debounce (DebounceChanged).
                (accounted,) = [a for a in actions if isinstance(a, SpeculationAccounted)]
                assert accounted.record is open_record and open_record.id not in resolved
                resolved.add(open_record.id)
            open_record = None
        elif event == "adopt":
            actions = p.external_speculation_adopted(now)
            if open_record is not None:
                assert open_record.adopted and open_record.id not in resolved
                resolved.add(open_record.id)
                p.turn_stopped(now)
                p.turn_started(now)
            open_record = None
        elif event == "request":
            actions = p.commit_requested(now)
            assert not p.commit_held  # Flux commits at its own EndOfTurn, never held
        elif event == "ready":
            p.speculation_progress(now, SpeculationStage.FIRST_SENTENCE, text)
        elif event == "turn_end":
            actions = p.turn_stopped(now)
            if open_record is not None:
                assert [a.record for a in actions if isinstance(a, WithdrawSpeculation)] == [
                    open_record
                ]
                resolved.add(open_record.id)
            open_record = None
            p.turn_started(now)
        assert (open_record is None) == (p.speculation is None)
    assert p.started == p.adopted + sum(p.withdrawn.values()) + (1 if open_record else 0)
