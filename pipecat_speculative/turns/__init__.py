"""Speculative user turns: the strategy, its decision core, the adaptive debounce, commit rules."""

from pipecat_speculative.turns.adaptive_debounce import (
    AdaptiveDebounce,
    DebounceParams,
    DebounceSnapshot,
    DebounceState,
)
from pipecat_speculative.turns.commit_patience import (
    CommitPatience,
    PatienceParams,
    PatienceSnapshot,
)
from pipecat_speculative.turns.free_patience_user_turn_stop_strategy import (
    FreePatienceUserTurnStopStrategy,
)
from pipecat_speculative.turns.speculation_events import (
    DebounceChange,
    SpeculationRecord,
    UserTurnCommit,
    WithdrawalReason,
)
from pipecat_speculative.turns.speculation_planner import (
    SpeculationPhase,
    SpeculationPlanner,
    SpeculativeTurnParams,
)
from pipecat_speculative.turns.speculative_turn_strategies import (
    CommitRule,
    speculative_turn_strategies,
)
from pipecat_speculative.turns.speculative_user_turn_stop_strategy import (
    SpeculativeUserTurnStopStrategy,
)
from pipecat_speculative.turns.transcription_guard import TranscriptionGuard

__all__ = [
    "AdaptiveDebounce",
    "CommitPatience",
    "CommitRule",
    "DebounceChange",
    "DebounceParams",
    "DebounceSnapshot",
    "DebounceState",
    "FreePatienceUserTurnStopStrategy",
    "PatienceParams",
    "PatienceSnapshot",
    "SpeculationPhase",
    "SpeculationPlanner",
    "SpeculationRecord",
    "SpeculativeTurnParams",
    "SpeculativeUserTurnStopStrategy",
    "TranscriptionGuard",
    "UserTurnCommit",
    "WithdrawalReason",
    "speculative_turn_strategies",
]
