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


def test_the_default_commit_rule_is_free_patience_fed_by_the_turns_delay():
    stop = only_stop(speculative_turn_strategies())
    rule = stop.commit_strategy
    assert isinstance(rule, FreePatienceUserTurnStopStrategy)
    # delay 0.2 + readiness 1.2 - margin 0.1, read from the planner
    assert rule.commit_delay_secs == pytest.approx(1.3)
    assert stop.planner.params.own_speculation


def test_speech_timeout_and_smart_turn_rules():
    timeout = only_stop(
        speculative_turn_strategies(commit="speech_timeout", user_speech_timeout=0.8)
    )
    assert isinstance(timeout.commit_strategy, SpeechTimeoutUserTurnStopStrategy)
    assert timeout.commit_strategy._user_speech_timeout == 0.8
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
