"""Sinks for the turn timing observer: log line, JSONL, Prometheus, OpenTelemetry."""

from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.sinks.jsonl_sink import JSONLSink
from pipecat_speculative.metrics.sinks.log_sink import LogSink, format_turn_line
from pipecat_speculative.metrics.sinks.otel_sink import OTelSink
from pipecat_speculative.metrics.sinks.prometheus_sink import PrometheusSink

__all__ = [
    "BaseTurnTimingSink",
    "JSONLSink",
    "LogSink",
    "OTelSink",
    "PrometheusSink",
    "format_turn_line",
]
