"""One call that returns ready ``UserTurnStrategies`` with speculation on."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from pipecat.turns.user_start import BaseUserTurnStartStrategy
from pipecat.turns.user_stop import BaseUserTurnStopStrategy
from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy
from pipecat.turns.user_stop.speech_timeout_user_turn_stop_strategy import (
    SpeechTimeoutUserTurnStopStrategy,
)
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipecat_speculative.turns.free_patience_user_turn_stop_strategy import (
    FreePatienceUserTurnStopStrategy,
)
from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)

if TYPE_CHECKING:
    from pipecat_speculative.profiles import TurnTakingProfile

__all__ = ["CommitRule", "speculative_turn_strategies"]

CommitRule = Literal["free_patience", "speech_timeout", "smart_turn"]


def speculative_turn_strategies(
    *,
    commit: CommitRule | BaseUserTurnStopStrategy = "free_patience",
    params: SpeculativeTurnParams | None = None,
    match_policy: EagerMatchPolicy | None = None,
    start: list[BaseUserTurnStartStrategy] | None = None,
    user_speech_timeout: float = 0.6,
    clock: Callable[[], float] | None = None,
    profile: TurnTakingProfile | None = None,
) -> UserTurnStrategies:
    """Build ``UserTurnStrategies`` whose stop strategy speculates.

    Example::

        user_params = LLMUserAggregatorParams(
            user_turn_strategies=speculative_turn_strategies(),
            vad_analyzer=SileroVADAnalyzer(),
        )

    Args:
        commit: The rule that decides the turn is over: ``"free_patience"`` (default: a
            silence floor of ``user_speech_timeout``, then the commit is held until the
            speculative answer is ready), ``"speech_timeout"`` (Pipecat's fixed
            ``user_speech_timeout``, no hold), ``"smart_turn"`` (Pipecat's local smart-turn v3
            analyzer, held like free patience), or any stop strategy instance (e.g. Pipecat's
            ``EagerUserTurnStopStrategy`` with Deepgram Flux, which then speculates itself and
            commits at Flux's end of turn).
        params: Speculation bounds and the adaptive debounce tuning.
        match_policy: Committed-vs-speculated comparison; Pipecat's ``NormalizedMatch`` if None.
        start: Start strategies; Pipecat's defaults (VAD, then transcription) if None.
        user_speech_timeout: The silence floor of ``"free_patience"`` and the timeout of
            ``"speech_timeout"``.
        clock: Monotonic clock for the strategy (tests).
        profile: The user's stored turn-taking profile: the strategy starts from what earlier
            calls learned (see ``pipecat_speculative.profiles.warm_start``) instead of cold.

    Returns:
        Strategies to pass as ``LLMUserAggregatorParams(user_turn_strategies=...)``.
    """
    if isinstance(commit, BaseUserTurnStopStrategy):
        rule = commit
    elif commit == "free_patience":
        rule = FreePatienceUserTurnStopStrategy(floor_secs=user_speech_timeout)
    elif commit == "speech_timeout":
        rule = SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=user_speech_timeout)
        # A fixed timeout is what was asked for: commit when it fires, ready or not.
        params = replace(params or SpeculativeTurnParams(), hold_commit_until_ready=False)
    elif commit == "smart_turn":
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3
        from pipecat.turns.user_stop import TurnAnalyzerUserTurnStopStrategy

        rule = TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())
    else:
        raise ValueError(
            f"unknown commit rule {commit!r}: use 'free_patience', 'speech_timeout', "
            "'smart_turn' or a BaseUserTurnStopStrategy"
        )
    kwargs = {"clock": clock} if clock is not None else {}
    strategy = SpeculativeUserTurnStopStrategy(
        commit_strategy=rule, params=params, match_policy=match_policy, **kwargs
    )
    if profile is not None:
        from pipecat_speculative.profiles.warm_start import warm_start

        warm_start(strategy, profile)
    return UserTurnStrategies(start=start, stop=[strategy])
