"""Fault injection for the loopback stand-ins.

Every stand-in owns a :class:`FaultPlan` (``server.faults``). A test arms a fault, the next
request (or stream, or WebSocket context) that matches it misbehaves the way the real service
does when it fails, and the test checks that the client side copes::

    async with OpenAIStandin() as s:
        s.faults.http_error(429, path="/v1/chat/completions")     # one-shot
        s.faults.disconnect(after=3, times=None)                  # sticky: every stream is cut

Kinds and what each stand-in does with them:

- ``HTTP_ERROR``: the request is answered with ``status`` and the service's JSON error body
  (OpenAI ``{"error": {...}}``, Pinecone ``{"code", "message", "details"}``, ElevenLabs
  ``{"detail": {...}}``). On a WebSocket route the handshake itself is refused with that status.
- ``SLOW_FIRST_BYTE``: ``delay_secs`` more before the first byte of the response (HTTP), or
  before the first audio of the next context (ElevenLabs WebSocket).
- ``DISCONNECT``: the TCP connection is aborted mid-stream after ``after`` chunks (OpenAI SSE
  content chunks, ElevenLabs audio messages or HTTP audio chunks). No close frame, no final
  chunk: the client sees a truncated stream, as on a real network cut. Non-streaming endpoints
  (Pinecone) abort before answering.
- ``MALFORMED``: after ``after`` good chunks, one broken message is sent: ``"invalid_json"``
  (not parseable), ``"missing_fields"`` (valid JSON lacking fields the client needs) or
  ``"invalid_base64"`` (ElevenLabs WebSocket: an audio message whose audio is not base64; the
  other stand-ins send invalid JSON for it).
- ``STALL``: the stream opens and sends ``after`` chunks, then nothing for ``delay_secs`` (the
  connection stays open, no error): a server that hangs mid-answer (OpenAI SSE).
- ``WITHHOLD_FINAL``: the ElevenLabs WebSocket closes the next context without ever sending its
  ``isFinal`` message (the audio all arrives; the client never hears that the context ended).

``times=1`` (the default) fires once; ``times=N`` fires N times; ``times=None`` is sticky until
:meth:`FaultPlan.clear` or :meth:`Fault.cancel`. ``path`` is an ``fnmatch`` pattern on the request
path (``"/v1/chat/*"``); ``None`` matches every path, including warmup requests, so pass a path
when the client also makes other calls.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

__all__ = ["Fault", "FaultKind", "FaultPlan", "MalformedKind"]

MalformedKind = Literal["invalid_json", "missing_fields", "invalid_base64"]


class FaultKind(StrEnum):
    """What goes wrong."""

    HTTP_ERROR = "http_error"
    SLOW_FIRST_BYTE = "slow_first_byte"
    DISCONNECT = "disconnect"
    MALFORMED = "malformed"
    WITHHOLD_FINAL = "withhold_final"
    STALL = "stall"


@dataclass
class Fault:
    """One armed fault.

    Parameters:
        kind: What goes wrong.
        path: ``fnmatch`` pattern of the request paths it applies to; None for all.
        times: How many times it fires; None keeps it armed until cancelled.
        status: HTTP status for ``HTTP_ERROR``.
        message: Error message for ``HTTP_ERROR`` (a service-specific default otherwise).
        retry_after_secs: ``Retry-After`` header for ``HTTP_ERROR`` (429s usually carry one).
        delay_secs: Extra delay for ``SLOW_FIRST_BYTE``; length of a ``STALL``.
        after: Good chunks/messages sent before ``DISCONNECT``, ``MALFORMED`` or ``STALL``
            strikes.
        malformed: Which broken message ``MALFORMED`` sends.
        fired: How many times it has fired so far.
        cancelled: Set by :meth:`cancel`.
    """

    kind: FaultKind
    path: str | None = None
    times: int | None = 1
    status: int = 500
    message: str | None = None
    retry_after_secs: float | None = None
    delay_secs: float = 0.0
    after: int = 0
    malformed: MalformedKind = "invalid_json"
    fired: int = 0
    cancelled: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None (sticky), got {self.times}")
        if self.after < 0:
            raise ValueError(f"after must be >= 0, got {self.after}")
        if self.delay_secs < 0:
            raise ValueError(f"delay_secs must be >= 0, got {self.delay_secs}")
        if self.kind is FaultKind.HTTP_ERROR and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {self.status}")
        if self.malformed not in ("invalid_json", "missing_fields", "invalid_base64"):
            raise ValueError(f"unknown malformed kind {self.malformed!r}")

    @property
    def sticky(self) -> bool:
        """Whether the fault stays armed until cancelled."""
        return self.times is None

    @property
    def armed(self) -> bool:
        """Whether the fault will fire again."""
        if self.cancelled:
            return False
        return self.times is None or self.fired < self.times

    def cancel(self) -> None:
        """Disarm the fault."""
        self.cancelled = True

    def matches(self, kind: FaultKind, path: str) -> bool:
        """Whether this fault applies to a ``kind`` decision on ``path``."""
        if self.kind is not kind or not self.armed:
            return False
        return self.path is None or fnmatch.fnmatchcase(path, self.path)


class FaultPlan:
    """The armed faults of one stand-in; first armed, first fired."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FaultPlan({self.pending!r})"

    @property
    def pending(self) -> list[Fault]:
        """Faults that will still fire."""
        with self._lock:
            return [f for f in self._faults if f.armed]

    def add(self, fault: Fault) -> Fault:
        """Arm ``fault`` and return it (keep it to check ``fired`` or to ``cancel()`` it)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def http_error(
        self,
        status: int = 500,
        *,
        path: str | None = None,
        times: int | None = 1,
        message: str | None = None,
        retry_after_secs: float | None = None,
    ) -> Fault:
        """Answer matching requests with ``status`` and the service's JSON error body."""
        return self.add(
            Fault(
                FaultKind.HTTP_ERROR,
                path=path,
                times=times,
                status=status,
                message=message,
                retry_after_secs=retry_after_secs,
            )
        )

    def slow_first_byte(
        self, delay_secs: float, *, path: str | None = None, times: int | None = 1
    ) -> Fault:
        """Delay the first byte of matching responses (first audio on a TTS socket)."""
        return self.add(
            Fault(FaultKind.SLOW_FIRST_BYTE, path=path, times=times, delay_secs=delay_secs)
        )

    def disconnect(
        self, *, after: int = 1, path: str | None = None, times: int | None = 1
    ) -> Fault:
        """Abort the connection after ``after`` streamed chunks (SSE cut, WebSocket drop)."""
        return self.add(Fault(FaultKind.DISCONNECT, path=path, times=times, after=after))

    def malformed(
        self,
        kind: MalformedKind = "invalid_json",
        *,
        after: int = 0,
        path: str | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Send one broken message after ``after`` good ones."""
        return self.add(
            Fault(FaultKind.MALFORMED, path=path, times=times, after=after, malformed=kind)
        )

    def stall(
        self, delay_secs: float, *, after: int = 1, path: str | None = None, times: int | None = 1
    ) -> Fault:
        """Send ``after`` chunks of a stream, then nothing for ``delay_secs`` (connection open)."""
        return self.add(
            Fault(FaultKind.STALL, path=path, times=times, after=after, delay_secs=delay_secs)
        )

    def withhold_final(self, *, path: str | None = None, times: int | None = 1) -> Fault:
        """Never send the ``isFinal`` message of the next context (ElevenLabs WebSocket)."""
        return self.add(Fault(FaultKind.WITHHOLD_FINAL, path=path, times=times))

    def take(self, kind: FaultKind, path: str) -> Fault | None:
        """Consume one firing of the first armed fault of ``kind`` matching ``path``."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(kind, path):
                    fault.fired += 1
                    return fault
        return None

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._faults.clear()
