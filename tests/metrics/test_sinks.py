"""Sinks: the log line, JSONL round trip, Prometheus exposition and endpoint, OpenTelemetry."""

from __future__ import annotations

import json
import urllib.request

import pytest
from loguru import logger
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pipecat.utils.tracing.tracing_context import TracingContext
from prometheus_client.parser import text_string_to_metric_families

from pipecat_speculative.metrics import (
    SCHEMA_VERSION,
    Alert,
    AlertKind,
    DebounceEntry,
    JSONLSink,
    LogSink,
    OTelSink,
    PrometheusSink,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
    format_turn_line,
)

from .sessions import speculative_session


def test_the_log_line_reads_like_a_latency_breakdown():
    records, _ = speculative_session()
    line = format_turn_line(records[1])
    assert line.startswith("turn 1 [speculative] end of speech → first audio 1,680 ms")
    assert "LLM → TTS start 1" in line
    assert "speculations 2: 1 adopted, 1 withdrawn (unknown), wasted 90+3 tokens 0 chars" in line
    assert line.endswith("answers 1")
    assert "\n" not in line


def test_the_log_sink_binds_the_record_to_the_message():
    records, summary = speculative_session()
    seen: list = []
    handler = logger.add(lambda m: seen.append(m.record), level="INFO", format="{message}")
    try:
        LogSink(name="T").on_turn(records[0], summary)
    finally:
        logger.remove(handler)
    (entry,) = seen
    assert entry["message"].startswith("T: turn 0 [normal]")
    assert entry["extra"]["turn_timing"]["stages_ms"]["total"] == 2170.0


def test_jsonl_round_trips_turns_and_the_session(tmp_path):
    records, summary = speculative_session()
    path = tmp_path / "out" / "turns.jsonl"
    sink = JSONLSink(path, transcripts="off")  # verbatim, so the records compare equal
    for record in records:
        sink.on_turn(record, summary)
    sink.on_session_end(summary)
    sink.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(d["record"], d["schema_version"]) for d in lines] == [
        ("turn", SCHEMA_VERSION),
        ("turn", SCHEMA_VERSION),
        ("session", SCHEMA_VERSION),
    ]
    assert [TurnRecord.from_dict(d) for d in lines[:2]] == records
    assert SessionSummary.from_dict(lines[2]) == summary


def test_a_reader_ignores_unknown_fields_and_refuses_a_newer_schema():
    records, _ = speculative_session()
    data = records[0].to_dict() | {"added_in_a_later_minor_version": 1}
    assert TurnRecord.from_dict(data) == records[0]
    with pytest.raises(ValueError):
        TurnRecord.from_dict(data | {"schema_version": SCHEMA_VERSION + 1})


def families(sink: PrometheusSink) -> dict:
    return {f.name: f for f in text_string_to_metric_families(sink.exposition())}


def sample(fams: dict, family: str, name: str, **labels) -> float:
    for s in fams[family].samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            return s.value
    raise AssertionError(f"no sample {name} {labels}")


def test_prometheus_exposition_parses_and_carries_stages_counters_and_gauges():
    records, summary = speculative_session()
    sink = PrometheusSink()
    sink.on_speculation_resolved("withdrawn", "resumed", summary)
    sink.on_speculation_resolved("adopted", None, summary)
    for record in records:
        sink.on_turn(record, summary)
    sink.on_alert(Alert(kind=AlertKind.TTS_FIRST_AUDIO_SLOW, message="slow"))
    sink.on_warmup(WarmupEntry(service="tts", secs=0.5, ok=True), summary)
    sink.on_debounce_changed(
        DebounceEntry(
            at_turn=1, old_secs=0.4, new_secs=0.45, reason="r", window_cancel_rate=0.5, samples=5
        ),
        summary,
    )
    live = families(sink)  # the session's gauges, while it lasts
    sink.on_session_end(summary)

    fams = families(sink)
    p = "pipecat_speculative_"
    assert (
        sample(fams, f"{p}turn_stage_seconds", f"{p}turn_stage_seconds_count", stage="total") == 2
    )
    assert sample(
        fams, f"{p}turn_stage_seconds", f"{p}turn_stage_seconds_sum", stage="total"
    ) == pytest.approx(2.17 + 1.68)
    assert sample(fams, f"{p}speculations_started", f"{p}speculations_started_total") == 2
    assert (
        sample(
            fams,
            f"{p}speculations_resolved",
            f"{p}speculations_resolved_total",
            outcome="withdrawn",
            reason="resumed",
        )
        == 1
    )
    assert sample(fams, f"{p}wasted_tokens", f"{p}wasted_tokens_total", kind="prompt") == 90
    assert sample(fams, f"{p}wasted_tokens", f"{p}wasted_tokens_total", kind="completion") == 3
    assert sample(fams, f"{p}alerts", f"{p}alerts_total", kind="tts_first_audio_slow") == 1
    assert sample(live, f"{p}cancel_rate", f"{p}cancel_rate", session="demo") == 0.5
    assert sample(live, f"{p}hit_rate", f"{p}hit_rate", session="demo") == 0.5
    assert sample(live, f"{p}warmup_seconds", f"{p}warmup_seconds", service="tts") == 0.5
    assert not fams[f"{p}cancel_rate"].samples  # an ended session's gauges leave with it
    assert sample(fams, f"{p}turns", f"{p}turns_total", completion="playback_done") == 2

    # The summary's counters advance by deltas: a repeated summary does not double them.
    sink.on_session_end(summary)
    fams = families(sink)
    assert sample(fams, f"{p}wasted_tokens", f"{p}wasted_tokens_total", kind="prompt") == 90


def test_each_prometheus_sink_has_its_own_registry():
    a, b = PrometheusSink(), PrometheusSink()
    assert a.registry is not b.registry


def test_the_prometheus_endpoint_serves_the_exposition():
    sink = PrometheusSink()
    port = sink.serve(port=0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
        assert "pipecat_speculative_turn_stage_seconds" in body
        list(text_string_to_metric_families(body))
    finally:
        sink.close()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def test_otel_spans_carry_the_stages_and_tile_from_t0(spans):
    provider, exporter = spans
    records, summary = speculative_session()
    OTelSink(tracer_provider=provider).on_turn(records[1], summary)

    finished = {s.name: s for s in exporter.get_finished_spans() if s.name != "speculation"}
    turn = finished["turn_timing"]
    assert turn.parent is None
    assert turn.start_time == int(2_000.0 * 1e9)
    assert turn.attributes["turn_timing.stage.total_ms"] == 1680.0
    assert turn.attributes["turn_timing.speculative"] is True
    first = finished["stage.speech_to_llm_start"]
    assert first.parent.span_id == turn.context.span_id
    assert (first.end_time - first.start_time) / 1e6 == pytest.approx(610.0)
    spec_spans = [s for s in exporter.get_finished_spans() if s.name == "speculation"]
    assert sorted(s.attributes["speculation.outcome"] for s in spec_spans) == [
        "adopted",
        "withdrawn",
    ]


def test_otel_spans_join_pipecats_conversation_when_tracing_is_on(spans):
    provider, exporter = spans
    tracer = provider.get_tracer("test")
    conversation = tracer.start_span("conversation")
    context = TracingContext()
    context.set_conversation_context(conversation.get_span_context(), "conv-1")
    records, summary = speculative_session()
    OTelSink(tracer_provider=provider, tracing_context=context).on_turn(records[0], summary)
    conversation.end()
    turn = next(s for s in exporter.get_finished_spans() if s.name == "turn_timing")
    assert turn.parent.span_id == conversation.get_span_context().span_id
    assert turn.attributes["conversation.id"] == "conv-1"


def test_the_grafana_dashboard_only_queries_metrics_the_sink_exposes():
    import re
    from pathlib import Path

    path = Path(__file__).parents[2] / "examples" / "grafana" / "pipecat_speculative_dashboard.json"
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"pipecat_speculative_[a-z_]+", e)}

    fams = families(PrometheusSink())
    known = set(fams)
    for fam in fams.values():
        known |= {f"{fam.name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count")}
    assert used and used <= known, used - known


def test_otel_sink_adopts_the_pipelines_tracing_context_only_when_tracing_is_on(spans):
    from types import SimpleNamespace

    provider, _ = spans
    context = TracingContext()
    records, summary = speculative_session()
    off = OTelSink(tracer_provider=provider)
    off.on_pipeline_setup(SimpleNamespace(enable_tracing=False, tracing_context=context))
    on = OTelSink(tracer_provider=provider)
    on.on_pipeline_setup(SimpleNamespace(enable_tracing=True, tracing_context=context))
    tracer = provider.get_tracer("test")
    conversation = tracer.start_span("conversation")
    context.set_conversation_context(conversation.get_span_context(), "conv-2")
    off.on_turn(records[0], summary)
    on.on_turn(records[0], summary)
    conversation.end()
    _, exporter = spans
    parents = [s.parent for s in exporter.get_finished_spans() if s.name == "turn_timing"]
    assert parents[0] is None
    assert parents[1].span_id == conversation.get_span_context().span_id
