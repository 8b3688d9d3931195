"""What a connection warmup reports, and the one path every warm service reports it through.

A warm service (OpenAI LLM, ElevenLabs TTS, Deepgram STT, the ElevenLabs HTTP session) times
each warmup, logs it, keeps it in ``warmup_reports``, calls an optional *warmup listener* and
emits its ``on_warmup`` event. The listener has the signature of
:meth:`~pipecat_speculative.metrics.turn_timing_observer.TurnTimingObserver.record_warmup`, so a
bot builder wires the observer in with ``warmup_listener=observer.record_warmup`` and the
services never import the observer.

Which warmups are reported: the first warmup of a service (``initial``), a connection re-opened
because the server closed an idle one (``rewarm``) and a socket re-opened after a drop
(``reconnect``): each is a connection cost that a turn would otherwise have paid. Routine
background upkeep (keep-alive pings, the spare connection replaced after a withdrawn inference)
is logged at debug level and counted by the service, not reported: a hesitant speaker causes
several per turn and they would drown the session summary.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from loguru import logger

__all__ = ["WarmupKind", "WarmupListener", "WarmupRecorder", "WarmupReport"]

WarmupListener = Callable[[str, float, bool], object]
"""``listener(service, secs, ok)``; may return an awaitable. ``TurnTimingObserver.record_warmup``
fits as is."""


class WarmupKind(StrEnum):
    """Why a connection was warmed."""

    INITIAL = "initial"
    """Before the first turn (at pipeline start, or when the bench calls ``warmup()``)."""
    REWARM = "rewarm"
    """The server closed an idle connection (keep-alive expired); a new one was opened."""
    RECONNECT = "reconnect"
    """A socket dropped and was re-opened."""


@dataclass(frozen=True)
class WarmupReport:
    """One timed warmup.

    Parameters:
        service: Which service: ``"openai"``, ``"elevenlabs"``, ``"elevenlabs-http"``,
            ``"deepgram"``.
        kind: Why it ran.
        secs: How long it took, success or not (``time.monotonic`` difference, >= 0).
        ok: Whether it left a warm connection behind.
        connections: Connections it opened (or re-used and confirmed alive).
        error: What went wrong, when it failed.
    """

    service: str
    kind: WarmupKind
    secs: float
    ok: bool
    connections: int = 0
    error: str | None = None

    @property
    def ms(self) -> int:
        """Duration in whole milliseconds, for log lines."""
        return round(self.secs * 1000)


class WarmupRecorder:
    """Keeps a service's warmup reports and delivers each to the listener and the event.

    One per service; the service passes its event emitter as ``emit`` so the
    ``on_warmup`` event fires with ``(service_object, report)``.

    Args:
        listener: Called with ``(service, secs, ok)`` for every report; an exception in it is
            logged and swallowed (a metrics hook must never take a service down).
        emit: Called with ``("on_warmup", report)``; None for helpers that are not Pipecat
            objects.
        clock: Monotonic clock, injectable for tests.
    """

    def __init__(
        self,
        *,
        listener: WarmupListener | None = None,
        emit: Callable[..., Awaitable[None]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.listener = listener
        self._emit = emit
        self.clock = clock
        self.reports: list[WarmupReport] = []

    @property
    def last(self) -> WarmupReport | None:
        """The most recent report, or None."""
        return self.reports[-1] if self.reports else None

    async def record(self, report: WarmupReport) -> WarmupReport:
        """Keep ``report``, then call the listener and emit ``on_warmup``. Returns it."""
        self.reports.append(report)
        if self.listener is not None:
            try:
                result = self.listener(report.service, report.secs, report.ok)
                if inspect.isawaitable(result):
                    await result
            except Exception as e:
                logger.warning(f"warmup listener failed on {report}: {e}")
        if self._emit is not None:
            await self._emit("on_warmup", report)
        return report
