"""OpenTelemetry spans for each turn's timing, placed in Pipecat's trace when tracing is on.

Per turn, one ``turn_timing`` span from the anchor (t0) to the last moment observed, carrying the
record as ``turn_timing.*`` attributes, with a child span per known stage (``stage.<name>``) and
per speculation (``speculation``, with its outcome and reason). Stage spans of an ordinary turn
tile the parent like a waterfall.

When the pipeline runs with ``enable_tracing=True``, Pipecat's worker keeps a per-pipeline
``TracingContext`` whose conversation span parents its ``turn`` spans; this sink finds it through
the processors' setup and parents its spans to the same conversation, with the same
``conversation.id`` attribute, so they sit next to Pipecat's own turn and service spans. Without
Pipecat tracing the spans are roots.

Span times are wall-clock (OpenTelemetry's convention), placed from the record's ``anchor_unix``
plus the monotonic offsets in the record; durations are exactly the record's.

Requires ``opentelemetry-sdk`` (or any API implementation), the ``otel`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from loguru import logger

from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord

if TYPE_CHECKING:
    from pipecat.processors.frame_processor import FrameProcessorSetup
    from pipecat.utils.tracing.tracing_context import TracingContext

__all__ = ["STAGE_BOUNDS", "OTelSink"]

STAGE_BOUNDS: dict[str, tuple[str, str]] = {
    "speech_to_llm_start": ("t0", "llm_request"),
    "llm_first_token": ("llm_request", "llm_first_token"),
    "first_sentence": ("llm_first_token", "first_sentence"),
    "llm_to_tts_start": ("first_sentence", "tts_request"),
    "tts_first_audio": ("tts_request", "tts_first_audio"),
    "playout": ("tts_first_audio", "bot_started_speaking"),
    "rag": ("rag_start", "rag_done"),
    "playback": ("bot_started_speaking", "bot_stopped_speaking"),
}
"""Which moments bound each stage span (``t0`` is the anchor of an end-of-speech turn)."""


class OTelSink(BaseTurnTimingSink):
    """Emits each turn's timing as OpenTelemetry spans.

    Args:
        tracer: Tracer to use. None gets one named ``pipecat_speculative.metrics`` from
            ``tracer_provider`` (or the global provider).
        tracer_provider: Provider for that tracer (tests pass one with an in-memory exporter).
        tracing_context: Pipecat's per-pipeline tracing context to parent the spans to. None
            takes the pipeline's own when Pipecat tracing is enabled.
    """

    def __init__(
        self,
        *,
        tracer: Any | None = None,
        tracer_provider: Any | None = None,
        tracing_context: TracingContext | None = None,
    ):
        try:
            from opentelemetry import trace
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "OTelSink needs OpenTelemetry: pip install 'pipecat-speculative[otel]'"
            ) from e
        self._trace = trace
        self._tracer = tracer or trace.get_tracer(
            "pipecat_speculative.metrics", tracer_provider=tracer_provider
        )
        self._tracing_context = tracing_context
        self._warned_no_anchor = False

    def __str__(self):
        return "OTelSink"

    def on_pipeline_setup(self, setup: FrameProcessorSetup):
        """Adopt the pipeline's tracing context when Pipecat tracing is enabled."""
        if self._tracing_context is None and setup.enable_tracing and setup.tracing_context:
            self._tracing_context = setup.tracing_context

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """Emit the turn's spans."""
        if record.anchor_unix is None:
            if not self._warned_no_anchor:
                self._warned_no_anchor = True
                logger.warning(f"{self}: turn {record.turn} has no wall-clock anchor, no span")
            return
        anchor_ns = int(record.anchor_unix * 1e9)

        def at(name: str) -> int | None:
            if name == "t0":
                return anchor_ns if record.anchor == "end_of_speech" else None
            ms = record.moment(name)
            return None if ms is None else anchor_ns + int(ms * 1e6)

        ends = [v for v in record.moments_ms.values() if v is not None]
        ends += [s.resolved_ms for s in record.speculations if s.resolved_ms is not None]
        end_ns = anchor_ns + int(max(ends, default=0.0) * 1e6)

        parent_context = None
        conversation_id = None
        if self._tracing_context is not None:
            parent_context = self._tracing_context.get_conversation_context()
            conversation_id = self._tracing_context.conversation_id

        span = self._tracer.start_span(
            "turn_timing",
            context=parent_context,
            start_time=anchor_ns,
            attributes=self._turn_attributes(record, conversation_id),
        )
        child_context = self._trace.set_span_in_context(span)
        for stage, (start_name, end_name) in STAGE_BOUNDS.items():
            start, end = at(start_name), at(end_name)
            if start is None or end is None or record.stage(stage) is None:
                continue
            child = self._tracer.start_span(
                f"stage.{stage}",
                context=child_context,
                start_time=min(start, end),
                attributes={"turn_timing.stage": stage, "turn_timing.ms": record.stage(stage)},
            )
            child.end(end_time=max(start, end))
        for spec in record.speculations:
            if spec.started_ms is None:
                continue
            start = anchor_ns + int(spec.started_ms * 1e6)
            resolved = spec.resolved_ms if spec.resolved_ms is not None else spec.started_ms
            attributes: dict[str, Any] = {
                "speculation.index": spec.index,
                "speculation.outcome": spec.outcome,
                "speculation.counts_toward_cancel_rate": spec.counts_toward_cancel_rate,
            }
            optional = {
                "speculation.reason": spec.reason,
                "speculation.strategy_id": spec.strategy_id,
                "speculation.delay_secs": spec.delay_secs,
                "speculation.llm_first_token_ms": spec.llm_first_token_ms,
                "speculation.prompt_tokens": spec.prompt_tokens,
                "speculation.completion_tokens": spec.completion_tokens,
                "speculation.tts_characters": spec.tts_characters,
            }
            attributes.update({k: v for k, v in optional.items() if v is not None})
            child = self._tracer.start_span(
                "speculation", context=child_context, start_time=start, attributes=attributes
            )
            child.end(end_time=max(start, anchor_ns + int(resolved * 1e6)))
        span.end(end_time=max(end_ns, anchor_ns))

    @staticmethod
    def _turn_attributes(record: TurnRecord, conversation_id: str | None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "turn_timing.session_id": record.session_id,
            "turn_timing.turn": record.turn,
            "turn_timing.anchor": record.anchor,
            "turn_timing.speculative": record.speculative,
            "turn_timing.answers": record.answers,
            "turn_timing.completion": record.completion,
            "turn_timing.interrupted": record.interrupted,
            "turn_timing.playback_watchdog_fired": record.playback_watchdog_fired,
            "turn_timing.speculations.started": record.speculations_started,
            "turn_timing.speculations.adopted": record.speculations_adopted,
            "turn_timing.speculations.withdrawn": record.speculations_withdrawn,
            "turn_timing.wasted.prompt_tokens": record.wasted_prompt_tokens,
            "turn_timing.wasted.completion_tokens": record.wasted_completion_tokens,
            "turn_timing.wasted.tts_characters": record.wasted_tts_characters,
        }
        for name, value in record.stages_ms.items():
            if value is not None:
                attributes[f"turn_timing.stage.{name}_ms"] = value
        for name, value in record.moments_ms.items():
            if value is not None:
                attributes[f"turn_timing.moment.{name}_ms"] = value
        if record.clamped:
            attributes["turn_timing.clamped"] = sorted(record.clamped)
        if conversation_id:
            attributes["conversation.id"] = conversation_id
        return attributes
