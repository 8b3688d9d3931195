"""Deepgram (listen v1, Nova) STT whose connection is timed, bounded and reported.

What stock ``DeepgramSTTService`` (Pipecat 1.14) already does, and this keeps: it connects in
``setup()`` and waits there until the connection is up, so it is ready before the first audio
frame; it sends ``KeepAlive`` every 5 s (Deepgram closes a silent stream after 10 s); and its
connection loop reconnects after a drop, with exponential backoff (at least 4 s, even after a
long healthy connection) and gives up after three quick failures in a row.

What :class:`WarmDeepgramSTTService` adds:

- **A budget on the first connection.** Stock ``setup()`` waits until the connection is up *or
  the loop gave up*, which against an unreachable endpoint is several backoff rounds (over 8 s)
  during which the pipeline cannot start. Here ``setup()`` waits at most
  ``warmup_timeout_secs``; the loop keeps trying in the background and the bot starts (audio
  that arrives before the connection is not transcribed, as during any reconnection).
- **Timing and reporting.** The first connection is logged as
  ``Deepgram connection warmed in N ms``; every reconnection is logged with the outage it ended
  (``Deepgram reconnected after N ms``). Both go to
  ``warmup_listener`` / ``on_warmup``; a failed first connection is a warning.

Connections are seen through the per-connection keepalive task the stock loop starts right
after each connection opens (and cancels when it closes), so nothing of the loop is copied.

``DeepgramFluxSTTService`` (v2) is not covered: it connects in ``setup()`` too and its receive
loop owns reconnection; it has no keepalive because Flux expects continuous audio.

- **A malformed message does not cost the connection.** The SDK's listening loop ends on the
  first text message that is not JSON, and stock Pipecat then drops the socket and backs off
  (at least 4 s of speech untranscribed, finals in flight lost). Here such a message is logged,
  counted (``malformed_messages_skipped``) and skipped; the socket stays open. A message that is
  JSON but not a known type is already skipped by the SDK.

- **A drop mid-utterance loses no words.** The audio sent since the last final transcript, and
  the audio of the outage, is kept (bounded by ``resend_audio_secs``) and sent first on the next
  connection, so the words the dropped connection never finalized are transcribed on the new
  one. Stock loses them, and everything said during its reconnect backoff.

``warm=False`` leaves the connection handling stock (``skip_malformed_messages`` and
``resend_audio_secs`` are separate).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from typing import Any

from loguru import logger
from pipecat.frames.frames import Frame, TranscriptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTService

from pipecat_speculative.pipecat_compat import (
    call_event_handler,
    deepgram_connection,
    deepgram_skip_malformed_messages,
    register_event_handler,
)
from pipecat_speculative.secret_log_filter import install_secret_log_filter
from pipecat_speculative.services.audio_replay_buffer import AudioReplayBuffer
from pipecat_speculative.services.warmup_report import (
    WarmupKind,
    WarmupListener,
    WarmupRecorder,
    WarmupReport,
)

__all__ = ["WarmDeepgramSTTService"]

install_secret_log_filter()

_SERVICE = "deepgram"


class WarmDeepgramSTTService(DeepgramSTTService):
    """``DeepgramSTTService`` with a bounded, timed and reported connection; see the module docs.

    Args:
        warm: False leaves the service stock.
        warmup_timeout_secs: How long ``setup()`` waits for the first connection before the
            pipeline starts without it.
        warmup_listener: ``listener(service, secs, ok)``, e.g. ``observer.record_warmup``.
        skip_malformed_messages: Skip a transcript message that is not JSON instead of letting
            the connection drop and reconnect.
        resend_audio_secs: Most audio kept to send again on a new connection (what was sent
            since the last final transcript, and what arrived while disconnected); None keeps
            none (stock: the words in flight at a drop are lost). 15 s covers a long
            utterance plus Pipecat's reconnect backoff; it costs 32 kB per second at 16 kHz.
        **kwargs: ``DeepgramSTTService`` arguments.
    """

    def __init__(
        self,
        *,
        warm: bool = True,
        warmup_timeout_secs: float = 5.0,
        warmup_listener: WarmupListener | None = None,
        skip_malformed_messages: bool = True,
        resend_audio_secs: float | None = 15.0,
        **kwargs: Any,
    ):
        if warmup_timeout_secs <= 0:
            raise ValueError("warmup_timeout_secs must be > 0")
        if resend_audio_secs is not None and resend_audio_secs <= 0:
            raise ValueError(f"resend_audio_secs must be > 0 or None, got {resend_audio_secs}")
        super().__init__(**kwargs)
        self._warm = warm
        self._warmup_timeout_secs = warmup_timeout_secs
        self._warmups = WarmupRecorder(
            listener=warmup_listener, emit=partial(call_event_handler, self)
        )
        register_event_handler(self, "on_warmup", sync=True)
        self._connect_started_at: float | None = None
        self._connection_lost_at: float | None = None
        self._has_connected = False
        self._refused_status: int | None = None
        self.malformed_messages_skipped = 0
        """Transcript messages that were not JSON, skipped instead of dropping the socket."""
        self._resend_audio_secs = resend_audio_secs
        self._untranscribed: AudioReplayBuffer | None = None
        self._resent_on: object | None = None
        self.audio_resent_secs = 0.0
        """Audio sent again on a new connection because the previous one dropped before its final."""
        if skip_malformed_messages and not deepgram_skip_malformed_messages(
            self, self._on_malformed_message
        ):
            logger.warning(f"{self}: cannot guard against malformed messages with this SDK")

    @property
    def warm(self) -> bool:
        """Whether warming is on."""
        return self._warm

    @property
    def warmup_reports(self) -> list[WarmupReport]:
        """Every connection reported so far (first, failures, reconnections), oldest first."""
        return self._warmups.reports

    async def run_stt(self, audio: bytes):
        """Send the audio the last connection did not finalize first on a new one, then ``audio``."""
        if self._resend_audio_secs is None:
            async for frame in super().run_stt(audio):
                yield frame
            return
        if self._untranscribed is None:
            self._untranscribed = AudioReplayBuffer(self._resend_audio_secs, self.sample_rate * 2)
        connection = deepgram_connection(self)
        if connection is not None and connection is not self._resent_on:
            self._resent_on = connection
            await self._resend(connection, self._untranscribed.restart())
        self._untranscribed.append(audio)
        async for frame in super().run_stt(audio):
            yield frame

    async def _resend(self, connection: Any, chunks: list[bytes]) -> None:
        if not chunks:
            return
        secs = sum(len(c) for c in chunks) / (self.sample_rate * 2)
        logger.info(
            f"{self}: sending {secs:.2f} s of audio again on the new connection (not transcribed "
            "for good before the last one ended)"
        )
        try:
            for chunk in chunks:
                await connection.send_media(chunk)
        except Exception as e:  # the connection loop reconnects; the audio is still kept
            logger.warning(f"{self}: could not send the kept audio again: {e}")
            return
        self.audio_resent_secs += secs

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM):
        """Forget the audio a final transcript covers, then push as stock."""
        if isinstance(frame, TranscriptionFrame) and self._untranscribed is not None:
            start = getattr(frame.result, "start", None)
            duration = getattr(frame.result, "duration", None)
            if isinstance(start, (int, float)) and isinstance(duration, (int, float)):
                self._untranscribed.acknowledge(start + duration)
        await super().push_frame(frame, direction)

    async def _connect(self):
        if not self._warm or self._has_connected:
            await super()._connect()
            return
        self._connect_started_at = time.monotonic()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._warmup_timeout_secs):
                await super()._connect()
        if deepgram_connection(self) is None and not self._has_connected:
            secs = time.monotonic() - self._connect_started_at
            refused = self._refused_status
            error = (
                f"handshake refused (HTTP {refused})"
                if refused is not None
                else f"not connected within {self._warmup_timeout_secs:g} s"
            )
            report = WarmupReport(
                service=_SERVICE, kind=WarmupKind.INITIAL, secs=secs, ok=False, error=error
            )
            if refused in (401, 403):
                logger.error(
                    f"{self}: Deepgram warmup failed: API key refused (HTTP {refused}); "
                    "nothing will be transcribed until the key is fixed"
                )
                await self._warmups.record(report)
                return
            logger.warning(
                f"{self}: Deepgram warmup failed after {report.ms} ms ({report.error}); "
                "still trying in the background, audio before the connection is not transcribed"
            )
            await self._warmups.record(report)

    def _on_malformed_message(self, message: str) -> None:
        self.malformed_messages_skipped += 1
        logger.warning(
            f"{self}: skipped a Deepgram message that is not JSON ({len(message)} chars); "
            "the connection stays open"
        )

    async def push_error(self, error_msg: str, exception: Exception | None = None, **kwargs: Any):
        """Note the HTTP status of a refused handshake for the warmup report, then push as stock.

        Pipecat gives up on a 4xx handshake and pushes its error; the status is only visible
        on the exception it pushes (the SDK's ``ApiError.status_code``).
        """
        status = getattr(exception, "status_code", None)
        if isinstance(status, int) and not self._has_connected:
            self._refused_status = status
        await super().push_error(error_msg, exception, **kwargs)

    async def _keepalive_handler(self):
        """Report the connection that just opened, then keep it alive as stock does."""
        if self._warm:
            await self._report_connected()
        try:
            await super()._keepalive_handler()
        finally:
            # Cancelled by the connection loop when this connection ends, for whatever reason.
            if self._warm:
                self._connection_lost_at = time.monotonic()

    async def _report_connected(self) -> None:
        now = time.monotonic()
        if not self._has_connected:
            self._has_connected = True
            started = self._connect_started_at if self._connect_started_at is not None else now
            report = WarmupReport(
                service=_SERVICE,
                kind=WarmupKind.INITIAL,
                secs=now - started,
                ok=True,
                connections=1,
            )
            logger.info(f"{self}: Deepgram connection warmed in {report.ms} ms")
        elif self._connection_lost_at is not None:
            report = WarmupReport(
                service=_SERVICE,
                kind=WarmupKind.RECONNECT,
                secs=now - self._connection_lost_at,
                ok=True,
                connections=1,
            )
            fate = (
                "was not transcribed"
                if self._resend_audio_secs is None
                else "is sent again with the audio not yet finalized"
            )
            logger.info(
                f"{self}: Deepgram reconnected after {report.ms} ms (audio in between {fate})"
            )
        else:
            return
        self._connection_lost_at = None
        await self._warmups.record(report)
