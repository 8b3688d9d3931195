"""The one-call set-up returns ready strategies for each commit rule."""

import pytest
from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_stop.eager_user_turn_stop_strategy import EagerUserTurnStopStrategy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative import (
    FreePatienceUserTurnStopStrategy,
    SpeculativeTurnParams,
    SpeculativeUserTurnStopStrategy,
    speculative_turn_strategies,
)


def only_stop(strategies: UserTurnStrategies) -> SpeculativeUserTurnStopStrategy:
    assert isinstance(strategies, UserTurnStrategies)
    (stop,) = strategies.stop
    assert isinstance(stop, SpeculativeUserTurnStopStrategy)
    return stop


def test_the_default_commit_rule_is_a_silence_floor_whose_commit_is_held_until_ready():
    stop = only_stop(speculative_turn_strategies())
    rule = stop.commit_strategy
    assert isinstance(rule, FreePatienceUserTurnStopStrategy)
    assert rule.floor_secs == pytest.approx(0.6)
    assert stop.planner.params.own_speculation
    assert stop.planner.params.hold_commit_until_ready


def test_a_fixed_speech_timeout_commits_when_it_fires():
    stop = only_stop(speculative_turn_strategies(commit="speech_timeout"))
    assert not stop.planner.params.hold_commit_until_ready


def test_speech_timeout_and_smart_turn_rules():
    timeout = only_stop(
        speculative_turn_strategies(commit="speech_timeout", user_speech_timeout=0.8)
    )
    assert isinstance(timeout.commit_strategy, SpeechTimeoutUserTurnStopStrategy)
    assert timeout.commit_strategy._user_speech_timeout == 0.8
    assert smart_is_held(speculative_turn_strategies(commit="smart_turn"))
    smart = only_stop(speculative_turn_strategies(commit="smart_turn"))
    assert isinstance(smart.commit_strategy, TurnAnalyzerUserTurnStopStrategy)


def test_a_flux_eager_rule_speculates_itself_and_params_are_kept():
    params = SpeculativeTurnParams(max_speculations_per_turn=2)
    stop = only_stop(speculative_turn_strategies(commit=EagerUserTurnStopStrategy(), params=params))
    assert not stop.planner.params.own_speculation
    assert stop.planner.params.max_speculations_per_turn == 2


def test_an_unknown_commit_rule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown commit rule 'smart'"):
        speculative_turn_strategies(commit="smart")  # type: ignore[arg-type]


def smart_is_held(strategies: UserTurnStrategies) -> bool:
    return only_stop(strategies).planner.params.hold_commit_until_ready
