"""Turn timing that stays correct under speculation: observer, records, sinks, alerts, report."""

from pipecat_speculative.metrics.alerts import Alert, AlertKind, AlertMonitor, AlertThresholds
from pipecat_speculative.metrics.playback_watchdog import PlaybackWatchdog
from pipecat_speculative.metrics.sinks import (
    BaseTurnTimingSink,
    JSONLSink,
    LogSink,
    OTelSink,
    PrometheusSink,
    format_turn_line,
)
from pipecat_speculative.metrics.speculation_ledger import SpeculationLedger
from pipecat_speculative.metrics.timing_mark_frame import (
    RAG_DONE,
    RAG_SKIP,
    RAG_START,
    TimingMarkFrame,
)
from pipecat_speculative.metrics.turn_record import (
    MOMENTS,
    SCHEMA_NAME,
    SCHEMA_VERSION,
    STAGES,
    DebounceEntry,
    PauseEntry,
    SessionSummary,
    SpeculationEntry,
    TurnRecord,
    WarmupEntry,
)
from pipecat_speculative.metrics.turn_timeline import (
    AnswerReadiness,
    LateAnswer,
    SpeculationResolved,
    TurnCompleted,
    TurnTimingTracker,
)
from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver

__all__ = [
    "MOMENTS",
    "RAG_DONE",
    "RAG_SKIP",
    "RAG_START",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STAGES",
    "Alert",
    "AlertKind",
    "AlertMonitor",
    "AlertThresholds",
    "AnswerReadiness",
    "BaseTurnTimingSink",
    "DebounceEntry",
    "JSONLSink",
    "LateAnswer",
    "LogSink",
    "OTelSink",
    "PauseEntry",
    "PlaybackWatchdog",
    "PrometheusSink",
    "SessionSummary",
    "SpeculationEntry",
    "SpeculationLedger",
    "SpeculationResolved",
    "TimingMarkFrame",
    "TurnCompleted",
    "TurnRecord",
    "TurnTimingObserver",
    "TurnTimingTracker",
    "WarmupEntry",
    "format_turn_line",
]
