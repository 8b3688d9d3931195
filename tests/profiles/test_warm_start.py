"""Snapshot at session end, warm start at the next: the first turn starts where the last call ended."""

import pytest
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)

from pipecat_speculative import SpeculativeUserTurnStopStrategy, speculative_turn_strategies
from pipecat_speculative.profiles import (
    SQLiteProfileStore,
    TurnTakingProfile,
    snapshot_profile,
    warm_start,
)
from pipecat_speculative.turns import (
    AdaptiveDebounce,
    CommitPatience,
    DebounceParams,
    DebounceSnapshot,
    PatienceParams,
    PatienceSnapshot,
    SpeculationPlanner,
    SpeculativeTurnParams,
)
from pipecat_speculative.turns.speculation_events import WithdrawalReason
from pipecat_speculative.turns.speculation_planner import ArmTimer, TimerKind

SALT = "test-salt-0123456789abcdef"


def hesitant_turn(p: SpeculationPlanner, t: float, *, pause: float = 0.4, end: float = 1.0):
    """'I want to' ... pause (resumed) ... 'go' ... end: one withdrawn speculation per turn."""
    p.turn_started(t)
    p.vad_started(t)
    p.final_transcript(t + 0.3, "I want to")
    (arm,) = p.vad_stopped(t + 0.5)
    p.timer_fired(t + 0.5 + arm.delay_secs, TimerKind.DEBOUNCE)
    p.vad_started(t + 0.5 + pause)
    p.final_transcript(t + 0.6 + pause, "go")
    p.vad_stopped(t + 1.0 + pause)
    p.commit(t + 1.0 + pause + end)
    p.turn_stopped(t + 1.0 + pause + end)
    return t + 3.0 + pause + end


def learned_session(turns: int = 5) -> SpeculationPlanner:
    p = SpeculationPlanner()
    t = 0.0
    for _ in range(turns):
        t = hesitant_turn(p, t)
    for secs in (0.5, 0.6, 0.55):
        p.observe_readiness(secs)
    return p


def test_a_session_moves_the_delay_and_the_profile_keeps_what_it_learned():
    p = learned_session()
    assert p.withdrawn[WithdrawalReason.RESUMED] == 5
    assert p.debounce.delay_secs == pytest.approx(0.3)  # moved from 0 (at most 0.3 at once)
    profile = snapshot_profile(p, now=1_800_000_000.0)
    assert profile.speculation_delay_secs == pytest.approx(0.3)
    assert profile.resumed_pause_secs == (0.4,) * 5
    assert len(profile.turn_end_pause_secs) == 5
    assert profile.recent_outcomes == (True,) * 5
    assert profile.readiness_secs == pytest.approx(p.readiness_secs, abs=1e-3)
    assert profile.readiness_measurements == 3
    assert profile.turns_seen == 5 and profile.sessions_seen == 1
    assert profile.updated_at == 1_800_000_000.0
    assert [pp.turns_ago for pp in profile.patience_pauses] == [5, 4, 3, 2, 1]
    assert profile.commit_patience_secs == pytest.approx(0.4 * 1.5 + 0.1)


def test_a_warm_started_strategy_starts_at_the_learned_delay():
    profile = snapshot_profile(learned_session())
    cold = SpeculativeUserTurnStopStrategy()
    warm = SpeculativeUserTurnStopStrategy()
    warm_start(warm, profile)
    assert cold.debounce.delay_secs == 0.0
    assert warm.debounce.delay_secs == pytest.approx(0.3)
    assert warm.planner.readiness_secs == pytest.approx(profile.readiness_secs)
    # The very first pause of the first turn waits the learned delay, not the cold one.
    warm.planner.turn_started(0.0)
    warm.planner.vad_started(0.0)
    warm.planner.final_transcript(0.3, "I want to")
    assert warm.planner.vad_stopped(0.5) == [ArmTimer(TimerKind.DEBOUNCE, pytest.approx(0.3))]


async def test_through_a_store_and_the_one_call_setup(tmp_path):
    store = SQLiteProfileStore(tmp_path / "profiles.db", salt=SALT)
    await store.put("+15550100", snapshot_profile(learned_session()))
    stored = await store.get("+15550100")
    strategies = speculative_turn_strategies(profile=stored)
    (stop,) = strategies.stop
    assert stop.debounce.delay_secs == pytest.approx(0.3)
    assert only_stop_cold().debounce.delay_secs == 0.0


def only_stop_cold() -> SpeculativeUserTurnStopStrategy:
    (stop,) = speculative_turn_strategies().stop
    return stop


def test_the_restored_pauses_keep_teaching_the_debounce():
    profile = snapshot_profile(learned_session())
    p = SpeculationPlanner()
    warm_start(p, profile)
    t = 0.0
    for _ in range(4):
        t = hesitant_turn(p, t)
    assert p.debounce.delay_secs == pytest.approx(0.3)  # stands until min_samples new outcomes
    hesitant_turn(p, t)
    # The 0.4 s resumed pauses (restored and new) say 0.43 s would have cancelled none.
    assert p.debounce.delay_secs == pytest.approx(0.43)


def test_a_second_session_accumulates_counts_and_ages_the_patience_pauses():
    first = snapshot_profile(learned_session(), now=100.0)
    p = SpeculationPlanner()
    warm_start(p, first)
    t = 0.0
    for _ in range(2):
        t = hesitant_turn(p, t, pause=0.6)
    second = snapshot_profile(p, previous=first, now=200.0)
    assert second.turns_seen == 7 and second.sessions_seen == 2
    assert second.readiness_measurements == 3  # nothing measured this session
    assert second.readiness_secs == first.readiness_secs
    assert [pp.turns_ago for pp in second.patience_pauses] == [7, 6, 5, 4, 3, 2, 1]
    assert second.resumed_pause_secs == (0.4,) * 5 + (0.6,) * 2
    assert second.updated_at == 200.0


def test_a_session_without_turns_leaves_the_profile_as_it_was():
    first = snapshot_profile(learned_session())
    p = SpeculationPlanner()
    warm_start(p, first)
    assert snapshot_profile(p, previous=first) is first


def test_a_cold_unmeasured_session_stores_no_readiness_guess():
    p = SpeculationPlanner()
    hesitant_turn(p, 0.0)
    assert snapshot_profile(p).readiness_secs is None


def test_a_measured_readiness_replaces_the_restored_one():
    p = SpeculationPlanner()
    warm_start(p, TurnTakingProfile.bounded(speculation_delay_secs=0.1, readiness_secs=0.5))
    assert p.readiness_secs == 0.5 and p.readiness_measurements == 0
    p.observe_readiness(0.9)
    assert p.readiness_secs == 0.9


def test_the_restored_delay_is_clamped_to_the_current_tuning_or_ignored_when_fixed():
    profile = TurnTakingProfile.bounded(speculation_delay_secs=0.9)
    bounded = SpeculationPlanner(SpeculativeTurnParams(debounce=DebounceParams(max_secs=0.5)))
    warm_start(bounded, profile)
    assert bounded.debounce.delay_secs == 0.5
    fixed = SpeculationPlanner(
        SpeculativeTurnParams(debounce=DebounceParams(initial_secs=0.2, adaptive=False))
    )
    warm_start(fixed, profile)
    assert fixed.debounce.delay_secs == 0.2


def test_restored_patience_is_forgotten_as_within_one_call():
    pause = TurnTakingProfile.bounded(speculation_delay_secs=0.0, patience_pauses=[(1, 0.8)])
    default = SpeculationPlanner()
    warm_start(default, pause)
    # The default memory is the turn the pause was seen in: the next call's first turn is not it.
    assert default.patience.secs(default.turn) == 0.0
    longer = SpeculationPlanner(SpeculativeTurnParams(patience=PatienceParams(memory_turns=2)))
    warm_start(longer, pause)
    assert longer.patience.secs(0) == pytest.approx(0.8 * 1.5 + 0.1)
    assert longer.patience.secs(1) == 0.0


def test_debounce_and_patience_snapshots_round_trip():
    d = AdaptiveDebounce()
    for s, r in [(0.4, True), (1.0, False)]:
        d.record_pause(s, resumed=r)
    d.record_outcome(withdrawn=True)
    again = AdaptiveDebounce()
    again.restore(d.snapshot())
    assert again.snapshot() == d.snapshot()
    assert again.state.window_cancel_rate == 1.0 and again.state.samples_since_change == 0
    assert DebounceSnapshot(0.2).pauses == ()

    c = CommitPatience()
    c.record_resumed_pause(3, 0.7)
    assert c.snapshot(4) == PatienceSnapshot(pauses=((1, 0.7),), turns=4)
    other = CommitPatience()
    other.restore(c.snapshot(4), turn=0)
    assert other.snapshot(0) == PatienceSnapshot(pauses=((1, 0.7),), turns=4)
    later = CommitPatience()
    later.restore(c.snapshot(4), turn=10)
    assert later.snapshot(10).pauses == c.snapshot(4).pauses


def test_only_strategies_and_planners_can_be_snapshotted():
    with pytest.raises(TypeError, match="SpeculativeUserTurnStopStrategy"):
        snapshot_profile(SpeechTimeoutUserTurnStopStrategy())  # type: ignore[arg-type]


async def test_in_a_pipeline_the_first_pause_of_a_warm_call_is_not_speculated_on():
    """A user who pauses 0.25 s mid-sentence: cold, the first pause costs a withdrawn inference;
    warm-started from a profile that learned 0.5 s, the first turn is answered once."""
    from tests.turns.test_speculative_strategy import Rig
    from tests.turns.timeline import Timeline

    def timeline():
        return (
            Timeline()
            .say("I want", pause_after_secs=0.25)
            .say("a table for two", pause_after_secs=0.9)
            .frames()
        )

    cold = Rig()
    await cold.run(timeline())
    assert cold.llm.started[0] == ("I want", True)
    assert [r.withdrawal_reason for r in cold.names("on_speculation_withdrawn")] == [
        WithdrawalReason.RESUMED
    ]

    warm = Rig()
    warm_start(warm.strategy, TurnTakingProfile.bounded(speculation_delay_secs=0.5))
    await warm.run(timeline())
    assert [text for text, _ in warm.llm.started] == ["I want a table for two"]
    assert warm.names("on_speculation_withdrawn") == []


def test_a_habit_of_long_pauses_protects_the_first_turn_of_the_next_call():
    """A user who paused long and went on in most turns of the last call: the next call's first
    turn gets the patience the last call ended with; a fluent user's next call does not."""
    hesitant = SpeculationPlanner()
    t = 0.0
    for _ in range(5):
        t = hesitant_turn(hesitant, t, pause=0.9)
    profile = snapshot_profile(hesitant)
    assert hesitant.patience.habit_secs(hesitant.turn) == pytest.approx(1.0)
    cold = SpeculationPlanner()
    assert cold.patience.secs(0) == 0.0
    warm = SpeculationPlanner()
    warm_start(warm, TurnTakingProfile.from_json(profile.to_json()))
    assert warm.patience.secs(0) == pytest.approx(0.9 + 0.1)

    fluent = SpeculationPlanner()
    t = 0.0
    for i in range(8):
        t = hesitant_turn(fluent, t, pause=0.9 if i == 3 else 0.3)
    after_fluent = SpeculationPlanner()
    warm_start(after_fluent, snapshot_profile(fluent))
    assert after_fluent.patience.secs(0) == 0.0
