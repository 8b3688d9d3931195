"""pipecat-speculative: speculative turns, adaptive debounce and trustworthy timing for Pipecat.

The most used names are re-exported here. Re-exports are lazy (PEP 562): the package also hosts a
pytest plugin that every pytest run imports, which must not pull in Pipecat.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AdaptiveDebounce": "pipecat_speculative.turns.adaptive_debounce",
    "DebounceParams": "pipecat_speculative.turns.adaptive_debounce",
    "FreePatienceUserTurnStopStrategy": (
        "pipecat_speculative.turns.free_patience_user_turn_stop_strategy"
    ),
    "SpeculationAwareLLMMixin": "pipecat_speculative.services.speculation_aware_llm",
    "SpeculationProgressFrame": "pipecat_speculative.frames",
    "SpeculationRecord": "pipecat_speculative.turns.speculation_events",
    "SpeculativeOpenAILLMService": "pipecat_speculative.services.speculative_openai_llm_service",
    "SpeculativeTurnParams": "pipecat_speculative.turns.speculation_planner",
    "SpeculativeUserTurnStopStrategy": (
        "pipecat_speculative.turns.speculative_user_turn_stop_strategy"
    ),
    "TranscriptionGuard": "pipecat_speculative.turns.transcription_guard",
    "TurnTimingObserver": "pipecat_speculative.metrics.turn_timing_observer",
    "WithdrawalReason": "pipecat_speculative.turns.speculation_events",
    "speculative_turn_strategies": "pipecat_speculative.turns.speculative_turn_strategies",
}

__all__ = [
    "AdaptiveDebounce",
    "DebounceParams",
    "FreePatienceUserTurnStopStrategy",
    "SpeculationAwareLLMMixin",
    "SpeculationProgressFrame",
    "SpeculationRecord",
    "SpeculativeOpenAILLMService",
    "SpeculativeTurnParams",
    "SpeculativeUserTurnStopStrategy",
    "TranscriptionGuard",
    "TurnTimingObserver",
    "WithdrawalReason",
    "speculative_turn_strategies",
]

if TYPE_CHECKING:
    from pipecat_speculative.frames import SpeculationProgressFrame
    from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver
    from pipecat_speculative.services.speculation_aware_llm import SpeculationAwareLLMMixin
    from pipecat_speculative.services.speculative_openai_llm_service import (
        SpeculativeOpenAILLMService,
    )
    from pipecat_speculative.turns.adaptive_debounce import AdaptiveDebounce, DebounceParams
    from pipecat_speculative.turns.free_patience_user_turn_stop_strategy import (
        FreePatienceUserTurnStopStrategy,
    )
    from pipecat_speculative.turns.speculation_events import SpeculationRecord, WithdrawalReason
    from pipecat_speculative.turns.speculation_planner import SpeculativeTurnParams
    from pipecat_speculative.turns.speculative_turn_strategies import speculative_turn_strategies
    from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
        SpeculativeUserTurnStopStrategy,
    )
    from pipecat_speculative.turns.transcription_guard import TranscriptionGuard


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
