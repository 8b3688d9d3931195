"""Prometheus metrics for turn timings and speculation accounting.

Metrics (prefix ``pipecat_speculative_``):

=====================================================  =========  ===================================
name                                                   type       labels / meaning
=====================================================  =========  ===================================
``turn_stage_seconds``                                 histogram  ``stage``: every stage of a turn
``turns_total``                                        counter    ``completion``: how turns closed
``answers_total``                                      counter    answers reaching the output
``multi_answer_turns_total``                           counter    turns answered more than once
``late_answers_total``                                 counter    answers after their turn closed
``speculations_started_total``                         counter    speculative inferences started
``speculations_resolved_total``                        counter    ``outcome``, ``reason``
``wasted_tokens_total``                                counter    ``kind``: prompt / completion
``wasted_tts_characters_total``                        counter    TTS characters of withdrawn work
``withdrawn_without_usage_total``                      counter    withdrawals with no usage reported
``ignored_ttfb_total``                                 counter    bogus cancellation TTFBs ignored
``playback_watchdog_total``                            counter    turns closed by the watchdog
``alerts_total``                                       counter    ``kind``
``debounce_changes_total``                             counter    speculation delay changes
``debounce_seconds``                                   gauge      current speculation delay
``cancel_rate``                                        gauge      withdrawn share, last N outcomes
``session_cancel_rate``                                gauge      withdrawn share, whole session
``hit_rate``                                           gauge      adopted share of resolved
``warmup_seconds``                                     gauge      ``service``: last warmup duration
``warmup_ok``                                          gauge      ``service``: 1 ok, 0 failed
=====================================================  =========  ===================================

Counters that the session summary also counts are advanced by the summary's deltas, so the
exposition and the JSONL session record always agree.

By default the metrics live in a registry of their own (tests and several bots in one process
each get theirs); pass ``prometheus_client.REGISTRY`` to expose them with the process defaults.
:meth:`PrometheusSink.serve` starts the optional HTTP endpoint.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from loguru import logger

from pipecat_speculative.metrics.alerts import Alert
from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.turn_record import (
    STAGES,
    DebounceEntry,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["DEFAULT_STAGE_BUCKETS", "PrometheusSink"]

DEFAULT_STAGE_BUCKETS: tuple[float, ...] = (
    0.025,
    0.05,
    0.1,
    0.2,
    0.3,
    0.4,
    0.5,
    0.65,
    0.8,
    1.0,
    1.25,
    1.5,
    2.0,
    2.5,
    3.0,
    5.0,
    10.0,
)
"""Seconds. Dense between 0.2 and 2 s, where voice latency budgets live (the reference: 1.55 s
simple, 1.97 s with RAG; TTS first audio 0.25-0.64 s)."""

_SUMMARY_COUNTERS = (
    "speculations_started",
    "wasted_prompt_tokens",
    "wasted_completion_tokens",
    "wasted_tts_characters",
    "withdrawn_without_usage",
    "ignored_ttfb",
    "playback_watchdog_fired",
    "late_answers",
)


class PrometheusSink(BaseTurnTimingSink):
    """Exposes turn timings and speculation accounting as Prometheus metrics.

    Args:
        registry: Where the metrics are registered. None creates a private
            :class:`~prometheus_client.CollectorRegistry`: registering the same names twice in the
            global one raises, which is what a second bot or test in one process would do.
        namespace: Metric name prefix.
        buckets: Histogram buckets for the stage durations, in seconds.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        namespace: str = "pipecat_speculative",
        buckets: tuple[float, ...] = DEFAULT_STAGE_BUCKETS,
    ):
        # Imported here so the sink can be listed (and the observer imported) without the
        # ``prometheus`` extra; only constructing it needs the client.
        try:
            from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusSink needs prometheus-client: "
                "pip install 'pipecat-speculative[prometheus]'"
            ) from e
        self._registry = registry if registry is not None else CollectorRegistry()
        r = self._registry
        self._stage = Histogram(
            "turn_stage_seconds",
            "Duration of each stage of a user turn (see the JSONL schema for definitions)",
            ["stage"],
            namespace=namespace,
            buckets=buckets,
            registry=r,
        )
        self._turns = Counter(
            "turns", "Turns closed, by how", ["completion"], namespace=namespace, registry=r
        )
        self._answers = Counter(
            "answers", "Answers that reached the output", namespace=namespace, registry=r
        )
        self._multi = Counter(
            "multi_answer_turns", "Turns answered more than once", namespace=namespace, registry=r
        )
        self._resolved = Counter(
            "speculations_resolved",
            "Speculations adopted or withdrawn, by reason",
            ["outcome", "reason"],
            namespace=namespace,
            registry=r,
        )
        self._alerts = Counter(
            "alerts", "Alerts raised, by kind", ["kind"], namespace=namespace, registry=r
        )
        self._debounce_changes = Counter(
            "debounce_changes", "Changes of the speculation delay", namespace=namespace, registry=r
        )
        wasted_tokens = Counter(
            "wasted_tokens",
            "Tokens reported for withdrawn speculations",
            ["kind"],
            namespace=namespace,
            registry=r,
        )
        self._summary_counters = {
            "speculations_started": Counter(
                "speculations_started",
                "Speculative inferences started",
                namespace=namespace,
                registry=r,
            ),
            "wasted_prompt_tokens": wasted_tokens.labels(kind="prompt"),
            "wasted_completion_tokens": wasted_tokens.labels(kind="completion"),
            "wasted_tts_characters": Counter(
                "wasted_tts_characters",
                "TTS characters reported for withdrawn speculations",
                namespace=namespace,
                registry=r,
            ),
            "withdrawn_without_usage": Counter(
                "withdrawn_without_usage",
                "Withdrawn speculations the LLM reported no usage for (waste unknown)",
                namespace=namespace,
                registry=r,
            ),
            "ignored_ttfb": Counter(
                "ignored_ttfb",
                "Bogus TTFB metrics emitted on cancellation, ignored",
                namespace=namespace,
                registry=r,
            ),
            "playback_watchdog_fired": Counter(
                "playback_watchdog",
                "Turns closed because playback never reported finishing",
                namespace=namespace,
                registry=r,
            ),
            "late_answers": Counter(
                "late_answers",
                "Answers whose audio reached the output after their turn closed",
                namespace=namespace,
                registry=r,
            ),
        }
        self._seen = dict.fromkeys(_SUMMARY_COUNTERS, 0)
        self._debounce = Gauge(
            "debounce_seconds", "Current speculation delay", namespace=namespace, registry=r
        )
        self._cancel_rate = Gauge(
            "cancel_rate",
            "Withdrawn share of the last N counted speculation outcomes (tool calls excluded)",
            namespace=namespace,
            registry=r,
        )
        self._session_cancel_rate = Gauge(
            "session_cancel_rate",
            "Withdrawn share of all counted speculation outcomes in the session",
            namespace=namespace,
            registry=r,
        )
        self._hit_rate = Gauge(
            "hit_rate", "Adopted share of resolved speculations", namespace=namespace, registry=r
        )
        self._warmup_secs = Gauge(
            "warmup_seconds",
            "Duration of the last warmup",
            ["service"],
            namespace=namespace,
            registry=r,
        )
        self._warmup_ok = Gauge(
            "warmup_ok",
            "Last warmup succeeded (1) or failed (0)",
            ["service"],
            namespace=namespace,
            registry=r,
        )
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def __str__(self):
        return "PrometheusSink"

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are in."""
        return self._registry

    def exposition(self) -> str:
        """The metrics in the Prometheus text format."""
        from prometheus_client.exposition import generate_latest

        return generate_latest(self._registry).decode("utf-8")

    def serve(self, port: int = 9464, addr: str = "127.0.0.1") -> int:
        """Serve ``/metrics`` over HTTP from a daemon thread.

        Args:
            port: TCP port; 0 picks a free one.
            addr: Interface to bind. Loopback by default: exposing metrics beyond the host is a
                deployment decision.

        Returns:
            The port actually bound.
        """
        if self._server is None:
            from prometheus_client import start_http_server

            self._server, self._thread = start_http_server(port, addr, registry=self._registry)
            logger.info(
                f"{self}: serving metrics on http://{addr}:{self._server.server_port}/metrics"
            )
        return self._server.server_port

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """Observe the stages and count the turn."""
        for name in STAGES:
            value = record.stage(name)
            if value is not None:
                self._stage.labels(stage=name).observe(value / 1000.0)
        self._turns.labels(completion=record.completion).inc()
        self._answers.inc(record.answers)
        if record.answers > 1:
            self._multi.inc()
        self._sync(summary)

    def on_speculation_resolved(self, outcome: str, reason: str | None, summary: SessionSummary):
        """Count the outcome."""
        self._resolved.labels(outcome=outcome, reason=reason or "").inc()
        self._sync(summary)

    def on_alert(self, alert: Alert):
        """Count the alert."""
        self._alerts.labels(kind=alert.kind.value).inc()

    def on_warmup(self, entry: WarmupEntry, summary: SessionSummary):
        """Record the warmup."""
        self._warmup_secs.labels(service=entry.service).set(entry.secs)
        self._warmup_ok.labels(service=entry.service).set(1 if entry.ok else 0)

    def on_debounce_changed(self, entry: DebounceEntry, summary: SessionSummary):
        """Record the new delay."""
        self._debounce_changes.inc()
        self._sync(summary)

    def on_late_answer(self, turn: int, summary: SessionSummary):
        """Count the late answer."""
        self._sync(summary)

    def on_session_end(self, summary: SessionSummary):
        """Bring the counters up to the final summary."""
        self._sync(summary)

    def close(self):
        """Stop the HTTP endpoint, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _sync(self, summary: SessionSummary):
        for name, counter in self._summary_counters.items():
            value = getattr(summary, name)
            delta = value - self._seen[name]
            if delta > 0:
                counter.inc(delta)
                self._seen[name] = value
        if summary.debounce_secs is not None:
            self._debounce.set(summary.debounce_secs)
        if summary.window_cancel_rate is not None:
            self._cancel_rate.set(summary.window_cancel_rate)
        if summary.cancel_rate is not None:
            self._session_cancel_rate.set(summary.cancel_rate)
        if summary.hit_rate is not None:
            self._hit_rate.set(summary.hit_rate)
