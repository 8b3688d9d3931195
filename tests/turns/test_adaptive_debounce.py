import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce, DebounceParams


def simulate_speaker(debounce: AdaptiveDebounce, rng: random.Random, turns: int, pause_sampler):
    """A speaker whose utterances have in-turn pauses drawn from ``pause_sampler``.

    Each in-turn pause longer than the delay costs a withdrawn speculation; each turn end costs an
    adopted one. Returns the outcomes seen (True = withdrawn).
    """
    outcomes = []
    for _ in range(turns):
        for _ in range(rng.randint(0, 3)):
            pause = pause_sampler(rng)
            debounce.record_pause(pause, resumed=True)
            if pause > debounce.delay_secs:
                debounce.record_outcome(withdrawn=True)
                outcomes.append(True)
        debounce.record_pause(1.5, resumed=False)
        debounce.record_outcome(withdrawn=False)
        outcomes.append(False)
    return outcomes


def test_never_changes_before_the_minimum_sample_count():
    debounce = AdaptiveDebounce(DebounceParams(min_samples=5))
    for _ in range(4):
        debounce.record_pause(0.9, resumed=True)
        assert debounce.record_outcome(withdrawn=True) is None
    assert debounce.delay_secs == DebounceParams().initial_secs
    # The reference system reacted to two samples from one person thinking aloud; not here.
    assert debounce.record_outcome(withdrawn=True) is not None


def test_a_rate_inside_the_band_changes_nothing():
    debounce = AdaptiveDebounce(DebounceParams(min_samples=5, window=20))
    pattern = [True, False, False, True, False, False] * 5  # 33 %
    for withdrawn in pattern:
        assert debounce.record_outcome(withdrawn=withdrawn) is None
    assert debounce.changes == []
    assert debounce.state.window_cancel_rate == pytest.approx(6 / 20)


def test_jumps_to_the_delay_the_pauses_say_would_reach_the_band():
    debounce = AdaptiveDebounce(
        DebounceParams(initial_secs=0.2, min_samples=5, margin_secs=0.03, max_jump_secs=1.0)
    )
    # Five resumptions at 0.5-0.9 s and two turn ends: at 0.2 s every pause is a cancellation.
    for pause in (0.5, 0.6, 0.7, 0.8, 0.9):
        debounce.record_pause(pause, resumed=True)
    debounce.record_pause(2.0, resumed=False)
    debounce.record_pause(2.0, resumed=False)
    outcomes = [True, True, True, False, True]
    changes = [debounce.record_outcome(withdrawn=w) for w in outcomes]
    change = changes[-1]
    assert change is not None
    # Shortest delay with cancels/(cancels + 2 ends) <= 35 %: one cancel left -> just past 0.8 s.
    assert change.new_secs == pytest.approx(0.83)
    assert change.old_secs == pytest.approx(0.2)
    assert "above" in change.reason and "pauses" in change.reason
    assert debounce.delay_secs == pytest.approx(0.83)


def test_a_low_rate_shrinks_the_delay_to_gain_latency():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.8, min_samples=5))
    for _ in range(5):
        debounce.record_pause(1.5, resumed=False)
        debounce.record_pause(0.3, resumed=True)
    for _ in range(5):
        debounce.record_outcome(withdrawn=False)
    assert debounce.delay_secs < 0.8
    assert "below" in debounce.changes[-1].reason


def test_falls_back_to_a_fixed_step_when_pauses_cannot_explain_the_rate():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.2, min_samples=5, step_secs=0.05))
    for _ in range(5):
        debounce.record_outcome(withdrawn=True)  # e.g. late transcripts, no pauses observed
    assert debounce.delay_secs == pytest.approx(0.25)
    assert "fixed step" in debounce.changes[-1].reason


def test_fixed_configuration_never_adapts():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.3, adaptive=False))
    for _ in range(50):
        debounce.record_pause(0.9, resumed=True)
        debounce.record_outcome(withdrawn=True)
    assert debounce.delay_secs == 0.3
    assert debounce.changes == []


@pytest.mark.parametrize("median", [0.35, 0.6, 0.9])
def test_converges_into_the_band_on_a_steady_speaker(median):
    rng = random.Random(7)
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.0, max_secs=1.5))

    def pause(r):
        return max(0.05, r.lognormvariate(0, 0.35) * median)

    simulate_speaker(debounce, rng, turns=80, pause_sampler=pause)  # learn
    tail = simulate_speaker(debounce, rng, turns=400, pause_sampler=pause)  # measure
    rate = sum(tail) / len(tail)
    assert 0.22 <= rate <= 0.45, (rate, debounce.delay_secs)
    # Converged: it stopped moving much.
    late = [c for c in debounce.changes[-5:]]
    assert all(abs(c.new_secs - c.old_secs) < 0.5 for c in late)


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(
        st.tuples(st.booleans(), st.floats(0, 5), st.booleans()), min_size=0, max_size=80
    ),
    lo=st.floats(0, 0.5),
    span=st.floats(0, 1.5),
)
def test_stays_within_bounds_whatever_it_sees(events, lo, span):
    params = DebounceParams(
        initial_secs=lo, min_secs=lo, max_secs=lo + span, min_samples=1, window=5
    )
    debounce = AdaptiveDebounce(params)
    for is_pause, secs, flag in events:
        if is_pause:
            debounce.record_pause(secs, resumed=flag)
        else:
            debounce.record_outcome(withdrawn=flag)
        assert params.min_secs <= debounce.delay_secs <= params.max_secs
    for change in debounce.changes:
        assert change.samples >= params.min_samples


def test_invalid_params_are_rejected():
    with pytest.raises(ValueError):
        DebounceParams(min_secs=0.5, max_secs=0.2)
    with pytest.raises(ValueError):
        DebounceParams(target_low=0.5, target_high=0.4)
    with pytest.raises(ValueError):
        DebounceParams(initial_secs=2.0)


def test_one_hesitant_sentence_moves_the_delay_only_part_of_the_way():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.2, min_samples=5, max_jump_secs=0.3))
    debounce.record_pause(2.0, resumed=False)
    for pause in (0.7, 0.8, 0.9, 0.95, 1.0):
        debounce.record_pause(pause, resumed=True)
        debounce.record_outcome(withdrawn=True)
    assert debounce.delay_secs == pytest.approx(0.5)
    assert "at most 0.30 s" in debounce.changes[-1].reason


def test_reaction_speed_does_not_depend_on_how_long_the_rate_stayed_in_the_band():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.2, min_samples=5, window=20))
    for i in range(1000):  # a long, well-behaved session: 33 % cancelled
        assert debounce.record_outcome(withdrawn=i % 3 == 0) is None
    assert debounce.state.samples_since_change <= 20  # bounded, not 1,000
    # The speaker starts thinking aloud: every speculation is withdrawn from now on.
    reacted_after = None
    for n in range(1, 30):
        debounce.record_pause(0.6, resumed=True)
        if debounce.record_outcome(withdrawn=True) is not None:
            reacted_after = n
            break
    # A window of 20 in-band outcomes needs a handful of withdrawals to leave the band, as it
    # would have early in the session (unbounded history needed ~166 after 1,000 outcomes).
    assert reacted_after is not None and reacted_after <= 8


def test_a_delay_pinned_at_a_bound_says_why_once():
    debounce = AdaptiveDebounce(DebounceParams(initial_secs=0.0, min_samples=5))
    for _ in range(12):  # nothing withdrawn: below the band, but already at the minimum
        assert debounce.record_outcome(withdrawn=False) is None
    assert debounce.delay_secs == 0.0
    reason = debounce.state.pinned_reason
    assert reason is not None and "below" in reason and "minimum" in reason
