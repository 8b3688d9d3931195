"""Alert thresholds: per-turn stages, the cancel-rate band (edge-triggered), warmups."""

from __future__ import annotations

import pytest

from pipecat_speculative.metrics import (
    AlertKind,
    AlertMonitor,
    AlertThresholds,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
)


def turn(**stages) -> TurnRecord:
    return TurnRecord(session_id="s", turn=3, stages_ms=stages)


def window(rate: float | None, samples: int) -> SessionSummary:
    return SessionSummary(session_id="s", window_cancel_rate=rate, window_samples=samples)


def test_default_thresholds_are_the_issues():
    th = AlertThresholds()
    assert (th.tts_first_audio_ms, th.llm_first_token_ms) == (500.0, 1500.0)
    assert (th.cancel_rate_low, th.cancel_rate_high, th.cancel_rate_window) == (0.30, 0.40, 20)
    assert th.warmup_failed is True


def test_slow_tts_and_llm_alert_and_fast_ones_do_not():
    monitor = AlertMonitor()
    assert monitor.check_turn(turn(tts_first_audio=500.0, llm_first_token=1500.0)) == []
    alerts = monitor.check_turn(turn(tts_first_audio=639.0, llm_first_token=1700.0))
    assert [(a.kind, a.value, a.threshold, a.turn) for a in alerts] == [
        (AlertKind.TTS_FIRST_AUDIO_SLOW, 639.0, 500.0, 3),
        (AlertKind.LLM_FIRST_TOKEN_SLOW, 1700.0, 1500.0, 3),
    ]
    assert "639 ms > 500 ms" in alerts[0].message


def test_unknown_stages_never_alert():
    assert AlertMonitor().check_turn(turn(tts_first_audio=None, llm_first_token=None)) == []


def test_the_cancel_rate_alert_waits_for_a_full_window_and_fires_once_per_excursion():
    monitor = AlertMonitor()
    assert monitor.check_cancel_rate(window(1.0, 2)) == []  # 2 samples are noise
    (alert,) = monitor.check_cancel_rate(window(0.55, 20))
    assert (alert.kind, alert.value, alert.threshold) == (
        AlertKind.CANCEL_RATE_OUT_OF_BAND,
        0.55,
        0.40,
    )
    assert monitor.check_cancel_rate(window(0.60, 20)) == []  # still out: no repeat
    assert monitor.check_cancel_rate(window(0.35, 20)) == []  # back in the band
    (low,) = monitor.check_cancel_rate(window(0.10, 20))
    assert low.threshold == 0.30


def test_a_failed_warmup_alerts():
    monitor = AlertMonitor()
    assert monitor.check_warmup(WarmupEntry("tts", 0.5, ok=True)) == []
    (alert,) = monitor.check_warmup(WarmupEntry("tts", 2.5, ok=False))
    assert (alert.kind, alert.service) == (AlertKind.WARMUP_FAILED, "tts")


def test_thresholds_can_be_switched_off_and_are_validated():
    monitor = AlertMonitor(AlertThresholds(tts_first_audio_ms=None, warmup_failed=False))
    assert monitor.check_turn(turn(tts_first_audio=5000.0)) == []
    assert monitor.check_warmup(WarmupEntry("tts", 2.5, ok=False)) == []
    with pytest.raises(ValueError):
        AlertThresholds(cancel_rate_low=0.5, cancel_rate_high=0.4)
