"""Threshold alerts on turn timings, the cancellation rate and warmups.

:class:`AlertMonitor` is a synchronous decision core: it is shown each closed turn, each
speculation outcome and each warmup, and returns the alerts to raise. The observer turns them into
its ``on_alert`` event, a warning log line and the sinks' alert counters.

The cancel-rate alert is edge-triggered: it fires when the rate over the last ``window`` counted
outcomes leaves the band and again only after it has come back inside, so a session stuck outside
the band raises one alert, not one per speculation. It waits for a full window: with the defaults,
20 outcomes, because a rate over 2 samples is noise (the reference system retuned on 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord, WarmupEntry

__all__ = ["Alert", "AlertKind", "AlertMonitor", "AlertThresholds"]


class AlertKind(StrEnum):
    """What an alert is about."""

    TTS_FIRST_AUDIO_SLOW = "tts_first_audio_slow"
    """The TTS took longer than the threshold from request to first audio."""
    LLM_FIRST_TOKEN_SLOW = "llm_first_token_slow"
    """The LLM took longer than the threshold from request to first token."""
    CANCEL_RATE_OUT_OF_BAND = "cancel_rate_out_of_band"
    """The cancellation rate over the window left the target band."""
    WARMUP_FAILED = "warmup_failed"
    """A connection warmup failed."""


@dataclass(frozen=True)
class AlertThresholds:
    """When to alert. Any threshold set to None is not checked.

    Parameters:
        tts_first_audio_ms: TTS request → first audio. 500 ms is about twice the warm ElevenLabs
            figure (254-307 ms) and below a cold connection (639 ms): it catches lost warmth.
        llm_first_token_ms: LLM request → first token. 1,500 ms is over twice the warm figure
            (~620 ms) and about a cold connection plus a slow model.
        cancel_rate_low: Lower edge of the target band (the adaptive debounce's default 30 %).
        cancel_rate_high: Upper edge of the band (40 %).
        cancel_rate_window: Counted outcomes the rate is taken over, and needed before checking.
        warmup_failed: Alert on a failed warmup.
    """

    tts_first_audio_ms: float | None = 500.0
    llm_first_token_ms: float | None = 1500.0
    cancel_rate_low: float | None = 0.30
    cancel_rate_high: float | None = 0.40
    cancel_rate_window: int = 20
    warmup_failed: bool = True

    def __post_init__(self):
        low, high = self.cancel_rate_low, self.cancel_rate_high
        if low is not None and high is not None and not 0.0 <= low <= high <= 1.0:
            raise ValueError(
                f"need 0 <= cancel_rate_low <= cancel_rate_high <= 1, got {low}, {high}"
            )
        if self.cancel_rate_window < 1:
            raise ValueError(f"cancel_rate_window must be >= 1, got {self.cancel_rate_window}")


@dataclass(frozen=True)
class Alert:
    """One alert.

    Parameters:
        kind: What it is about.
        message: Human-readable, with the numbers.
        value: The measured value (ms, a rate, or seconds for a warmup).
        threshold: The threshold it crossed (for the band: the edge it is past).
        turn: The turn it concerns, if any.
        service: The service it concerns (warmups), if any.
    """

    kind: AlertKind
    message: str
    value: float | None = None
    threshold: float | None = None
    turn: int | None = None
    service: str | None = None


class AlertMonitor:
    """Decides which alerts a turn, an outcome or a warmup raises.

    Args:
        thresholds: The thresholds; None uses :class:`AlertThresholds`' defaults.
    """

    def __init__(self, thresholds: AlertThresholds | None = None):
        self._thresholds = thresholds or AlertThresholds()
        self._rate_out_of_band = False

    @property
    def thresholds(self) -> AlertThresholds:
        """The thresholds in force."""
        return self._thresholds

    def check_turn(self, record: TurnRecord) -> list[Alert]:
        """Alerts raised by a closed turn's stages."""
        alerts: list[Alert] = []
        th = self._thresholds
        tts = record.stage("tts_first_audio")
        if th.tts_first_audio_ms is not None and tts is not None and tts > th.tts_first_audio_ms:
            alerts.append(
                Alert(
                    kind=AlertKind.TTS_FIRST_AUDIO_SLOW,
                    message=(
                        f"turn {record.turn}: TTS first audio {tts:.0f} ms "
                        f"> {th.tts_first_audio_ms:.0f} ms"
                    ),
                    value=tts,
                    threshold=th.tts_first_audio_ms,
                    turn=record.turn,
                )
            )
        llm = record.stage("llm_first_token")
        if th.llm_first_token_ms is not None and llm is not None and llm > th.llm_first_token_ms:
            alerts.append(
                Alert(
                    kind=AlertKind.LLM_FIRST_TOKEN_SLOW,
                    message=(
                        f"turn {record.turn}: LLM first token {llm:.0f} ms "
                        f"> {th.llm_first_token_ms:.0f} ms"
                    ),
                    value=llm,
                    threshold=th.llm_first_token_ms,
                    turn=record.turn,
                )
            )
        return alerts

    def check_cancel_rate(self, summary: SessionSummary) -> list[Alert]:
        """Alert when the window cancel rate leaves the band (once per excursion)."""
        th = self._thresholds
        rate = summary.window_cancel_rate
        if (
            rate is None
            or summary.window_samples < th.cancel_rate_window
            or (th.cancel_rate_low is None and th.cancel_rate_high is None)
        ):
            return []
        low = th.cancel_rate_low if th.cancel_rate_low is not None else 0.0
        high = th.cancel_rate_high if th.cancel_rate_high is not None else 1.0
        outside = rate < low or rate > high
        if not outside:
            self._rate_out_of_band = False
            return []
        if self._rate_out_of_band:
            return []
        self._rate_out_of_band = True
        edge = low if rate < low else high
        return [
            Alert(
                kind=AlertKind.CANCEL_RATE_OUT_OF_BAND,
                message=(
                    f"cancel rate {rate:.0%} over the last {summary.window_samples} speculations "
                    f"is outside the band {low:.0%}-{high:.0%}"
                ),
                value=rate,
                threshold=edge,
            )
        ]

    def check_warmup(self, entry: WarmupEntry) -> list[Alert]:
        """Alert on a failed warmup."""
        if entry.ok or not self._thresholds.warmup_failed:
            return []
        return [
            Alert(
                kind=AlertKind.WARMUP_FAILED,
                message=f"warmup of {entry.service} failed after {entry.secs * 1000:.0f} ms",
                value=entry.secs,
                service=entry.service,
            )
        ]
