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

``active_sessions`` (gauge) counts the sessions being exported. The gauges that describe one
session (``debounce_seconds``, the rates, the warmup gauges) carry a ``session`` label and are
removed when the session ends, so a fleet dashboard aggregates over live sessions
(``avg(pipecat_speculative_cancel_rate)``) and the series count stays bounded.

Counters that the session summary also counts are advanced by that session's own deltas (one
baseline per live session), so one sink serving many bots counts every session's events and the
exposition agrees with the sum of the JSONL session records.

By default the metrics live in a registry of their own; pass a shared registry (or
``prometheus_client.REGISTRY``) to expose several sinks together: sinks on one registry share
its metric objects, so a second sink never registers a name twice.
:meth:`PrometheusSink.serve` starts the optional HTTP endpoint.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections import OrderedDict
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

_ENDED_SESSIONS_KEPT = 256
"""Ended sessions whose counter baselines are kept, so a repeated end does not count twice."""

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
            from prometheus_client import CollectorRegistry
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "PrometheusSink needs prometheus-client: "
                "pip install 'pipecat-speculative[prometheus]'"
            ) from e
        self._registry = registry if registry is not None else CollectorRegistry()
        self._m = _shared_metrics(self._registry, namespace, buckets)
        # Per live session, the summary counters already exported: each session's summary
        # counts only that session, so its deltas are its own events.
        self._seen: dict[str, dict[str, int]] = {}
        self._warmup_services: dict[str, set[str]] = {}
        self._ended: OrderedDict[str, dict[str, int]] = OrderedDict()
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
        m = self._m
        for name in STAGES:
            value = record.stage(name)
            if value is not None:
                m.stage.labels(stage=name).observe(value / 1000.0)
        m.turns.labels(completion=record.completion).inc()
        m.answers.inc(record.answers)
        if record.answers > 1:
            m.multi.inc()
        self._sync(summary)

    def on_speculation_resolved(self, outcome: str, reason: str | None, summary: SessionSummary):
        """Count the outcome."""
        self._m.resolved.labels(outcome=outcome, reason=reason or "").inc()
        self._sync(summary)

    def on_alert(self, alert: Alert):
        """Count the alert."""
        self._m.alerts.labels(kind=alert.kind.value).inc()

    def on_warmup(self, entry: WarmupEntry, summary: SessionSummary):
        """Record the warmup."""
        session = self._session(summary)
        if session not in self._seen:
            return
        self._m.warmup_secs.labels(service=entry.service, session=session).set(entry.secs)
        self._m.warmup_ok.labels(service=entry.service, session=session).set(1 if entry.ok else 0)
        self._warmup_services.setdefault(session, set()).add(entry.service)

    def on_debounce_changed(self, entry: DebounceEntry, summary: SessionSummary):
        """Record the new delay."""
        self._m.debounce_changes.inc()
        self._sync(summary)

    def on_late_answer(self, turn: int, summary: SessionSummary):
        """Count the late answer."""
        self._sync(summary)

    def on_session_end(self, summary: SessionSummary):
        """Bring the counters up to the final summary, then drop the session's gauges.

        The counters keep the session's counts; its gauge series leave with it, so a process
        serving bot after bot exports one series per live session, not one per session ever.
        """
        self._sync(summary)
        session = summary.session_id
        seen = self._seen.pop(session, None)
        if seen is not None:
            self._m.sessions.dec()
            # Kept (bounded) so a repeated end or a late event counts only what is new.
            self._ended[session] = seen
            while len(self._ended) > _ENDED_SESSIONS_KEPT:
                self._ended.popitem(last=False)
        for gauge in self._m.session_gauges:
            with contextlib.suppress(KeyError):
                gauge.remove(session)
        for service in self._warmup_services.pop(session, ()):
            for gauge in (self._m.warmup_secs, self._m.warmup_ok):
                with contextlib.suppress(KeyError):
                    gauge.remove(service, session)

    def close(self):
        """Stop the HTTP endpoint, if serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=1.0)
            self._thread = None

    def _session(self, summary: SessionSummary) -> str:
        """The session's id, counting it as live the first time it is seen."""
        session = summary.session_id
        if session not in self._seen and session not in self._ended:
            self._seen[session] = dict.fromkeys(_SUMMARY_COUNTERS, 0)
            self._m.sessions.inc()
        return session

    def _sync(self, summary: SessionSummary):
        session = self._session(summary)
        live = session in self._seen
        seen = self._seen[session] if live else self._ended[session]
        m = self._m
        for name, counter in m.summary_counters.items():
            value = getattr(summary, name)
            delta = value - seen[name]
            if delta > 0:
                counter.inc(delta)
                seen[name] = value
        if not live:
            return  # an ended session's gauges are gone and stay gone
        if summary.debounce_secs is not None:
            m.debounce.labels(session=session).set(summary.debounce_secs)
        if summary.window_cancel_rate is not None:
            m.cancel_rate.labels(session=session).set(summary.window_cancel_rate)
        if summary.cancel_rate is not None:
            m.session_cancel_rate.labels(session=session).set(summary.cancel_rate)
        if summary.hit_rate is not None:
            m.hit_rate.labels(session=session).set(summary.hit_rate)


class _Metrics:
    """The metric objects of one (registry, namespace): built once, shared by its sinks.

    Registering a name twice in one registry raises ("Duplicated timeseries"), so every sink on
    a shared registry must use the same objects.
    """

    def __init__(self, registry: CollectorRegistry, namespace: str, buckets: tuple[float, ...]):
        from prometheus_client import Counter, Gauge, Histogram

        r = registry
        self.buckets = buckets
        self.stage = Histogram(
            "turn_stage_seconds",
            "Duration of each stage of a user turn (see the JSONL schema for definitions)",
            ["stage"],
            namespace=namespace,
            buckets=buckets,
            registry=r,
        )
        self.turns = Counter(
            "turns", "Turns closed, by how", ["completion"], namespace=namespace, registry=r
        )
        self.answers = Counter(
            "answers", "Answers that reached the output", namespace=namespace, registry=r
        )
        self.multi = Counter(
            "multi_answer_turns", "Turns answered more than once", namespace=namespace, registry=r
        )
        self.resolved = Counter(
            "speculations_resolved",
            "Speculations adopted or withdrawn, by reason",
            ["outcome", "reason"],
            namespace=namespace,
            registry=r,
        )
        self.alerts = Counter(
            "alerts", "Alerts raised, by kind", ["kind"], namespace=namespace, registry=r
        )
        self.debounce_changes = Counter(
            "debounce_changes", "Changes of the speculation delay", namespace=namespace, registry=r
        )
        wasted_tokens = Counter(
            "wasted_tokens",
            "Tokens reported for withdrawn speculations",
            ["kind"],
            namespace=namespace,
            registry=r,
        )
        self.summary_counters = {
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
        self.debounce = Gauge(
            "debounce_seconds",
            "Current speculation delay",
            ["session"],
            namespace=namespace,
            registry=r,
        )
        self.cancel_rate = Gauge(
            "cancel_rate",
            "Withdrawn share of the last N counted speculation outcomes (tool calls excluded)",
            ["session"],
            namespace=namespace,
            registry=r,
        )
        self.session_cancel_rate = Gauge(
            "session_cancel_rate",
            "Withdrawn share of all counted speculation outcomes in the session",
            ["session"],
            namespace=namespace,
            registry=r,
        )
        self.hit_rate = Gauge(
            "hit_rate",
            "Adopted share of resolved speculations",
            ["session"],
            namespace=namespace,
            registry=r,
        )
        self.warmup_secs = Gauge(
            "warmup_seconds",
            "Duration of the last warmup",
            ["service", "session"],
            namespace=namespace,
            registry=r,
        )
        self.warmup_ok = Gauge(
            "warmup_ok",
            "Last warmup succeeded (1) or failed (0)",
            ["service", "session"],
            namespace=namespace,
            registry=r,
        )
        self.sessions = Gauge(
            "active_sessions",
            "Sessions whose turns are being exported (ended ones leave)",
            namespace=namespace,
            registry=r,
        )
        self.session_gauges = (
            self.debounce,
            self.cancel_rate,
            self.session_cancel_rate,
            self.hit_rate,
        )


_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, _Metrics]] = (
    weakref.WeakKeyDictionary()
)
_METRICS_LOCK = threading.Lock()


def _shared_metrics(
    registry: CollectorRegistry, namespace: str, buckets: tuple[float, ...]
) -> _Metrics:
    with _METRICS_LOCK:
        by_namespace = _METRICS.setdefault(registry, {})
        metrics = by_namespace.get(namespace)
        if metrics is None:
            metrics = by_namespace[namespace] = _Metrics(registry, namespace, buckets)
        elif metrics.buckets != buckets:
            logger.warning(
                f"PrometheusSink: the registry already has {namespace} metrics with other "
                "buckets; using those"
            )
        return metrics
