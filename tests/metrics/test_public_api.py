"""Every name in ``__all__`` exists, and the package re-exports each public module's API."""

from __future__ import annotations

import importlib

import pytest

import pipecat_speculative.metrics as metrics

MODULES = [
    "pipecat_speculative.metrics.alerts",
    "pipecat_speculative.metrics.playback_watchdog",
    "pipecat_speculative.metrics.report",
    "pipecat_speculative.metrics.sinks",
    "pipecat_speculative.metrics.sinks.base_turn_timing_sink",
    "pipecat_speculative.metrics.sinks.jsonl_sink",
    "pipecat_speculative.metrics.sinks.log_sink",
    "pipecat_speculative.metrics.sinks.otel_sink",
    "pipecat_speculative.metrics.sinks.prometheus_sink",
    "pipecat_speculative.metrics.speculation_ledger",
    "pipecat_speculative.metrics.timing_mark_frame",
    "pipecat_speculative.metrics.turn_record",
    "pipecat_speculative.metrics.turn_timeline",
    "pipecat_speculative.metrics.turn_timing_observer",
    "pipecat_speculative.cli",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"


def test_the_package_lists_what_it_exports():
    assert sorted(metrics.__all__) == sorted(set(metrics.__all__))
    for attr in metrics.__all__:
        assert hasattr(metrics, attr)
