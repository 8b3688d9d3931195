"""The free-patience commit, decided by the planner on virtual time (no pipeline, no sleeps).

Timeline of every case: the user speaks from 0 to 1.0 (VAD stop at 1.0); the speculation delay is
0.1 s; the commit rule (a 0.6 s floor) asks for the commit at 1.6.
"""

import pytest

from pipecat_speculative.frames import SpeculationStage
from pipecat_speculative.turns.adaptive_debounce import DebounceParams
from pipecat_speculative.turns.speculation_planner import (
    ArmTimer,
    FinalizeCommit,
    SpeculationPlanner,
    SpeculativeTurnParams,
    TimerKind,
)

TEXT = "what's the weather in Paris"
STARTED, SENTENCE, AUDIO = (
    SpeculationStage.STARTED,
    SpeculationStage.FIRST_SENTENCE,
    SpeculationStage.FIRST_AUDIO,
)


def planner(**kw) -> SpeculationPlanner:
    debounce = kw.pop("debounce", DebounceParams(initial_secs=0.1))
    return SpeculationPlanner(SpeculativeTurnParams(debounce=debounce, **kw))


def speculating(p: SpeculationPlanner, *, reports: bool = True) -> SpeculationPlanner:
    """User turn up to a started speculation (at 1.1) that the LLM reported starting."""
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.final_transcript(0.9, TEXT)
    p.vad_stopped(1.0)
    p.timer_fired(1.1, TimerKind.DEBOUNCE)
    assert p.speculation is not None
    if reports:
        p.speculation_progress(1.11, STARTED, TEXT)
    return p


def finalize(actions) -> FinalizeCommit | None:
    found = [a for a in actions if isinstance(a, FinalizeCommit)]
    assert len(found) <= 1
    if found:
        assert actions[-1] is found[0], "the commit is the last thing done"
    return found[0] if found else None


def commit_timer(actions) -> float | None:
    arms = [a.delay_secs for a in actions if isinstance(a, ArmTimer) and a.kind is TimerKind.COMMIT]
    return arms[-1] if arms else None


def test_a_commit_requested_before_the_answer_is_ready_waits_for_it():
    p = speculating(planner())
    actions = p.commit_requested(1.6)
    assert finalize(actions) is None and p.commit_held
    # The ceiling bounds the hold: 2.5 s after the VAD stop.
    assert commit_timer(actions) == pytest.approx(1.0 + 2.5 - 1.6)
    actions = p.speculation_progress(1.9, SENTENCE, TEXT)
    assert finalize(actions) is not None and not p.commit_held
    assert p.speculation.ready_at == 1.9


def test_an_answer_ready_before_the_floor_is_committed_at_the_floor():
    p = speculating(planner())
    assert p.speculation_progress(1.4, SENTENCE, TEXT) == []  # nothing asked to commit yet
    assert finalize(p.commit_requested(1.6)) is not None


def test_the_ceiling_commits_a_stalled_answer():
    p = speculating(planner(commit_ceiling_secs=1.5))
    actions = p.commit_requested(1.6)
    assert commit_timer(actions) == pytest.approx(0.9)
    assert finalize(p.timer_fired(2.5, TimerKind.COMMIT)) is not None


def test_resumed_speech_drops_the_held_commit_and_nothing_commits_later():
    p = speculating(planner())
    p.commit_requested(1.6)
    actions = p.vad_started(1.7)
    assert not p.commit_held
    assert any(getattr(a, "kind", None) is TimerKind.COMMIT for a in actions)  # cancelled
    # The answer of the (not yet withdrawn) speculation becomes ready: no commit.
    assert finalize(p.speculation_progress(1.8, SENTENCE, TEXT)) is None
    assert p.timer_fired(4.0, TimerKind.COMMIT) == []  # a stale timer does nothing


def test_a_withdrawal_before_readiness_commits_without_waiting_when_nothing_replaces_it():
    p = speculating(planner())
    p.commit_requested(1.6)
    actions = p.speculation_failed(1.7)  # the LLM failed: nothing to wait for any more
    assert finalize(actions) is not None
    assert kinds_of(actions)[0] == "CancelTimer"


def test_an_extended_text_keeps_the_hold_for_the_new_speculation():
    p = speculating(planner())
    p.commit_requested(1.6)
    actions = p.final_transcript(1.65, "and in Rome")
    assert finalize(actions) is None and p.commit_held
    assert p.speculation.text == f"{TEXT} and in Rome"
    # The old speculation's readiness does not count for the new one.
    assert finalize(p.speculation_progress(1.7, SENTENCE, TEXT)) is None
    assert finalize(p.speculation_progress(2.2, SENTENCE, p.speculation.text)) is not None


def test_first_audio_is_awaited_when_the_tts_is_speculative():
    p = speculating(planner(ready_stage=AUDIO))
    p.commit_requested(1.6)
    assert finalize(p.speculation_progress(1.8, SENTENCE, TEXT)) is None
    assert finalize(p.speculation_progress(2.0, AUDIO, TEXT)) is not None


def test_without_readiness_reports_the_hold_ends_at_the_estimate():
    p = speculating(planner(initial_readiness_secs=0.7), reports=False)
    actions = p.commit_requested(1.6)
    # speculation start 1.1 + estimated readiness 0.7 = 1.8
    assert commit_timer(actions) == pytest.approx(0.2)
    assert finalize(p.timer_fired(1.8, TimerKind.COMMIT)) is not None


def test_the_estimate_follows_measured_readiness():
    p = planner(initial_readiness_secs=0.7)
    p.seed_readiness(0.9)
    assert p.readiness_secs == pytest.approx(0.9)
    speculating(p)
    p.speculation_progress(1.6, SENTENCE, TEXT)  # 0.5 s after the speculation started
    assert p.readiness_secs == pytest.approx(0.5)
    p.seed_readiness(2.0)  # a prior never overrides a measurement
    assert p.readiness_secs == pytest.approx(0.5)


def test_a_pending_speculation_is_waited_for_up_to_its_estimated_readiness():
    p = planner(debounce=DebounceParams(initial_secs=0.8), initial_readiness_secs=0.5)
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.final_transcript(0.9, TEXT)
    p.vad_stopped(1.0)
    actions = p.commit_requested(1.6)  # the speculation is due at 1.8
    assert commit_timer(actions) == pytest.approx(1.0 + 0.8 + 0.5 - 1.6)
    started = p.timer_fired(1.8, TimerKind.DEBOUNCE)
    assert commit_timer(started) == pytest.approx(0.5)  # still an estimate
    # Once the LLM reports it started, the hold follows its real readiness, up to the ceiling.
    reported = p.speculation_progress(1.82, STARTED, TEXT)
    assert commit_timer(reported) == pytest.approx(1.0 + 2.5 - 1.82)


def test_nothing_to_wait_for_commits_at_once():
    p = planner(max_speculations_per_turn=1)
    speculating(p)
    p.vad_started(1.3)
    p.interim_transcript(1.35, "and")  # resumption withdraws; the cap is now spent
    p.final_transcript(1.5, "and Rome")
    p.vad_stopped(1.6)
    assert finalize(p.commit_requested(2.2)) is not None


def test_holding_is_off_for_a_fixed_timeout():
    p = speculating(planner(hold_commit_until_ready=False))
    assert finalize(p.commit_requested(1.6)) is not None


def kinds_of(actions):
    return [type(a).__name__ for a in actions]


# ---------------------------------------------------------------- learned patience


def test_a_commit_that_cut_the_user_off_makes_the_next_turns_more_patient():
    p = speculating(planner())
    p.speculation_progress(1.5, SENTENCE, TEXT)
    assert finalize(p.commit_requested(1.6)) is not None  # ready and past the 0.6 s floor
    p.commit(1.6)
    p.turn_stopped(1.6)
    # The user goes on 0.9 s after the VAD stop, 0.3 s after the commit: a cut-in.
    p.turn_started(1.9)
    assert p.patience.cut_ins == 1
    assert p.patience.secs(p.turn) == pytest.approx(0.9 * 1.5 + 0.1)


def test_learned_patience_holds_even_a_ready_answer():
    p = planner()
    p.patience.record_resumed_pause(0, 0.8)  # this user paused 0.8 s and went on before
    speculating(p)
    p.speculation_progress(1.5, SENTENCE, TEXT)
    actions = p.commit_requested(1.6)
    assert finalize(actions) is None
    assert commit_timer(actions) == pytest.approx(1.0 + 0.8 * 1.5 + 0.1 - 1.6)


def test_resumed_pauses_are_forgotten_after_their_turn():
    p = planner()
    p.patience.record_resumed_pause(0, 0.8)
    assert p.patience.secs(0) > 0.6
    assert p.patience.secs(1) == pytest.approx(0.0)  # back to the commit rule's own floor


def test_a_longer_memory_carries_patience_to_the_next_turns():
    from pipecat_speculative.turns.commit_patience import PatienceParams

    p = planner(patience=PatienceParams(memory_turns=3))
    p.patience.record_resumed_pause(0, 0.8)
    assert p.patience.secs(2) > 0.6 and p.patience.secs(3) == pytest.approx(0.0)


def test_a_normal_reply_gap_is_not_a_cut_in():
    p = speculating(planner())
    p.speculation_progress(1.5, SENTENCE, TEXT)
    p.commit_requested(1.6)
    p.commit(1.6)
    p.turn_stopped(1.6)
    p.turn_started(4.0)  # after the bot answered
    assert p.patience.cut_ins == 0 and p.patience.secs(p.turn) == pytest.approx(0.0)


# ---------------------------------------------------------------- interim transcripts


def test_speculation_starts_at_the_vad_stop_on_the_interim_transcript():
    p = planner(debounce=DebounceParams(initial_secs=0.0))
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.interim_transcript(0.8, "what's the weather")
    p.vad_stopped(1.0)
    (start, _) = p.timer_fired(1.0, TimerKind.DEBOUNCE)
    assert start.record.text == "what's the weather" and start.record.from_interim
    # The final says the same, punctuated: the speculation stands and is adopted.
    assert p.final_transcript(1.15, "What's the weather?") == []
    actions = p.commit(1.6)
    assert kinds_of(actions)[-2:] == ["AdoptSpeculation", "TurnCommitted"]


def test_a_final_that_differs_from_the_interim_re_speculates_without_teaching_the_debounce():
    p = planner(debounce=DebounceParams(initial_secs=0.0, min_samples=1))
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.interim_transcript(0.8, "what's the")
    p.vad_stopped(1.0)
    first = p.timer_fired(1.0, TimerKind.DEBOUNCE)[0].record
    actions = p.final_transcript(1.15, "What's the weather?")
    assert kinds_of(actions) == [
        "CancelTimer",
        "WithdrawSpeculation",
        "StartSpeculation",
        "ArmTimer",
    ]
    assert actions[2].record.text == "What's the weather?" and not actions[2].record.from_interim
    assert first.from_interim
    assert p.debounce.state.samples == 0  # transcript churn says nothing about pauses


def test_interim_speculation_can_be_turned_off():
    p = planner(debounce=DebounceParams(initial_secs=0.0), speculate_on_interim=False)
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.interim_transcript(0.8, "what's the weather")
    p.vad_stopped(1.0)
    assert p.timer_fired(1.0, TimerKind.DEBOUNCE) == []  # waits for the final
    assert kinds_of(p.final_transcript(1.15, "What's the weather?"))[0] == "StartSpeculation"


def test_with_flux_the_commit_is_fluxs_own_and_never_held():
    # Flux speculates itself (EagerEndOfTurn) and commits at its EndOfTurn: the planner only
    # accounts for it, so a readiness report changes nothing and nothing is held.
    p = planner(own_speculation=False)
    p.turn_started(0.0)
    p.vad_started(0.0)
    p.final_transcript(0.9, TEXT)
    p.vad_stopped(1.0)
    p.external_speculation_started(1.1, TEXT)
    p.speculation_progress(1.12, STARTED, TEXT)
    assert finalize(p.commit_requested(1.3)) is not None and not p.commit_held
    p.speculation_progress(1.5, SENTENCE, TEXT)
    assert kinds_of(p.external_speculation_adopted(1.6))[-2:] == [
        "AdoptSpeculation",
        "TurnCommitted",
    ]


# ---------------------------------------------------------------- a habit of long pauses


def habit_patience(**kw):
    from pipecat_speculative.turns.commit_patience import CommitPatience, PatienceParams

    return CommitPatience(PatienceParams(**kw))


def test_a_user_who_pauses_long_in_most_turns_gets_patience_from_the_first_pause():
    c = habit_patience()
    for turn, pause in [(0, 0.8), (1, 0.0), (2, 1.1), (3, 0.7)]:
        if pause:
            c.record_resumed_pause(turn, pause)
    # Turn 4 saw no pause yet: one-turn memory alone would give the rule's own floor.
    assert c.habit_secs(4) == pytest.approx(1.1 + 0.1)  # 3 of 4 turns; their 90th percentile
    assert c.secs(4) == pytest.approx(1.2)


def test_one_hesitant_turn_among_fluent_ones_is_not_a_habit():
    c = habit_patience()
    c.record_resumed_pause(2, 1.0)
    assert c.habit_secs(12) is None  # 1 of 12 turns
    assert c.secs(12) == 0.0
    assert c.habit_secs(3) is None  # 1 of 3: too few turns to judge
    assert c.secs(3) == 0.0


def test_short_resumed_pauses_do_not_make_a_habit():
    c = habit_patience()
    for turn in range(6):
        c.record_resumed_pause(turn, 0.3)  # comma pauses: the commit rule waits them out
    assert c.habit_secs(6) is None and c.secs(6) == 0.0


def test_the_habit_is_judged_over_the_recent_window_and_capped():
    c = habit_patience(habit_window=4, habit_min_turns=4)
    for turn in range(4):
        c.record_resumed_pause(turn, 3.0)
    assert c.secs(4) == pytest.approx(1.6)  # max_secs
    assert c.habit_secs(8) is None  # turns 4-7 had no pause: the habit is gone
    assert habit_patience(habit_share=None).habit_secs(4) is None


def test_a_turn_counts_once_with_its_longest_pause():
    c = habit_patience()
    for pause in (0.6, 0.9, 0.7):
        c.record_resumed_pause(0, pause)
    assert c.snapshot(1).pauses == ((1, 0.9),)


def test_a_habit_holds_a_ready_answer_in_the_planner():
    p = planner()
    for turn, pause in enumerate([0.9, 0.8, 0.0, 1.0]):
        start = turn * 10.0 - 100  # four earlier committed turns, long before this one
        p.turn_started(start)
        p.patience.record_resumed_pause(turn, pause)
        p.commit(start + 5)
        p.turn_stopped(start + 5)
    assert p.turn == 4 and p.patience.cut_ins == 0
    speculating(p)
    p.speculation_progress(1.5, SENTENCE, TEXT)
    actions = p.commit_requested(1.6)
    assert finalize(actions) is None
    assert commit_timer(actions) == pytest.approx(1.0 + 1.0 + 0.1 - 1.6)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"habit_share": 0.0}, "habit_share"),
        ({"habit_window": 20}, "habit_window"),
        ({"habit_min_turns": 13}, "habit_min_turns"),
        ({"habit_quantile": 0.0}, "habit_quantile"),
    ],
)
def test_habit_tuning_is_checked(params, match):
    from pipecat_speculative.turns.commit_patience import PatienceParams

    with pytest.raises(ValueError, match=match):
        PatienceParams(**params)
