"""One Prometheus sink (or several on one registry) serving many sessions counts every event."""

from dataclasses import replace

from pipecat.frames.frames import EagerEndOfTurnCancelFrame, EndFrame, VADUserStartedSpeakingFrame
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from pipecat_speculative.metrics.sinks.prometheus_sink import PrometheusSink
from pipecat_speculative.metrics.turn_record import SessionSummary
from pipecat_speculative.metrics.turn_timing_observer import TurnTimingObserver
from tests.metrics.fakes import FakeOutput
from tests.metrics.scripted import Script

P = "pipecat_speculative_"


def value(sink: PrometheusSink, name: str, **labels) -> float | None:
    for family in text_string_to_metric_families(sink.exposition()):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def run_session(sink: PrometheusSink, session_id: str, speculations: int, *, end: bool = True):
    """Feed ``speculations`` resolved speculations the way an observer does, one event each."""
    summary = SessionSummary(session_id=session_id)
    for i in range(1, speculations + 1):
        summary = replace(
            summary,
            speculations_started=i,
            speculations_withdrawn=i,
            wasted_prompt_tokens=10 * i,
            cancel_rate=1.0,
            window_cancel_rate=1.0,
        )
        sink.on_speculation_resolved("withdrawn", "resumed", summary)
    if end:
        sink.on_session_end(summary)


def test_one_sink_serving_two_sessions_counts_both():
    sink = PrometheusSink()
    run_session(sink, "a", 10, end=False)
    run_session(sink, "b", 8, end=False)  # interleaving does not matter: per-session baselines
    run_session(sink, "a", 10)
    run_session(sink, "b", 8)
    assert value(sink, f"{P}speculations_started_total") == 18
    assert value(sink, f"{P}wasted_tokens_total", kind="prompt") == 180
    assert value(sink, f"{P}speculations_resolved_total", reason="resumed") == 36


def test_two_observers_sinks_on_one_registry_share_metrics_and_count_correctly():
    registry = CollectorRegistry()
    a, b = PrometheusSink(registry), PrometheusSink(registry)  # no duplicate-timeseries error
    run_session(a, "a", 10)
    run_session(b, "b", 8)
    assert value(a, f"{P}speculations_started_total") == 18
    assert a.exposition() == b.exposition()


def test_session_gauges_are_labelled_while_live_and_removed_at_the_end():
    sink = PrometheusSink()
    run_session(sink, "a", 3, end=False)
    run_session(sink, "b", 2, end=False)
    assert value(sink, f"{P}active_sessions") == 2
    assert value(sink, f"{P}cancel_rate", session="a") == 1.0
    assert value(sink, f"{P}cancel_rate", session="b") == 1.0
    sink.on_session_end(SessionSummary(session_id="a", speculations_started=3))
    assert value(sink, f"{P}active_sessions") == 1
    assert value(sink, f"{P}cancel_rate", session="a") is None
    assert value(sink, f"{P}cancel_rate", session="b") == 1.0


async def speculating_session(sink: PrometheusSink, session_id: str, speculations: int):
    """An observer session with ``speculations`` speculative inferences, each withdrawn."""
    s = Script()
    s.observer = TurnTimingObserver(
        clock=s.clock,
        wall_clock=s.clock.wall,
        output_types=(FakeOutput,),
        session_id=session_id,
        sinks=[sink],
        log=False,
    )
    t = 1000
    for i in range(speculations):
        await s.vad_stop(t)
        await s.push(t + 100, s.context(f"words {i}", speculation=True))
        await s.push(t + 200, VADUserStartedSpeakingFrame())
        await s.push(t + 300, EagerEndOfTurnCancelFrame())
        t += 1000
    return s


async def test_two_observers_sharing_one_sink_export_both_sessions():
    registry = CollectorRegistry()
    sink = PrometheusSink(registry)
    a = await speculating_session(sink, "a", 10)
    b = await speculating_session(sink, "b", 8)
    for s in (a, b):
        await s.push(100_000, EndFrame(), source=s.output)
    assert value(sink, f"{P}speculations_started_total") == 18
    # A second sink on the same registry (another bot's observer) registers nothing twice.
    assert value(PrometheusSink(registry), f"{P}speculations_started_total") == 18
