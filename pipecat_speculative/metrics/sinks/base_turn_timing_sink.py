"""Where the turn timing observer sends what it measured."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipecat_speculative.metrics.alerts import Alert
from pipecat_speculative.metrics.turn_record import (
    DebounceEntry,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
)

if TYPE_CHECKING:
    from pipecat.processors.frame_processor import FrameProcessorSetup

__all__ = ["BaseTurnTimingSink"]


class BaseTurnTimingSink:
    """Receives records, outcomes, alerts and session facts from the observer.

    Every method is synchronous and called on the observer's own task (never on the pipeline's),
    in the order things happened; a sink that blocks delays that observer only. Override what you
    need: the defaults do nothing. A sink must not raise: the observer logs and drops an exception
    rather than lose the other sinks' output.
    """

    def __str__(self):
        return self.__class__.__name__

    def on_pipeline_setup(self, setup: FrameProcessorSetup):
        """The pipeline the observer watches, as its processors were set up (once).

        Carries the pipeline's tracing context when Pipecat tracing is enabled.
        """

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """A turn was closed."""

    def on_speculation_resolved(self, outcome: str, reason: str | None, summary: SessionSummary):
        """A speculation was adopted or withdrawn (``reason`` is a ``WithdrawalReason`` value)."""

    def on_alert(self, alert: Alert):
        """An alert was raised."""

    def on_warmup(self, entry: WarmupEntry, summary: SessionSummary):
        """A connection warmup was timed."""

    def on_debounce_changed(self, entry: DebounceEntry, summary: SessionSummary):
        """The strategy changed the speculation delay."""

    def on_late_answer(self, turn: int, summary: SessionSummary):
        """Answer audio reached the output after its turn was closed."""

    def on_session_end(self, summary: SessionSummary):
        """The session ended; the final summary."""

    def close(self):
        """Release resources (files, servers). Called once, after the session end."""
