"""ElevenLabs WebSocket TTS whose socket, and the server-side context of the next response, are ready.

What stock ``ElevenLabsTTSService`` (Pipecat 1.14) already does, and this keeps: it connects the
socket in ``setup()`` (before StartFrame), sends a keepalive every 10 s, and after a drop its
receive loop reconnects (first attempt at once, then exponential backoff of 4-10 s between
failed attempts, giving up after 3). ``run_tts`` also reconnects on demand when it finds the
socket closed.

What :class:`WarmElevenLabsTTSService` adds:

- **The context of the next response is opened ahead of its text.** Stock opens a context (its
  first message carries the voice settings) only when the first sentence arrives, which is on
  the critical path. Here a context is opened as soon as the socket connects and again each
  time a response ends or is interrupted (ready for the next one), when a response starts (``LLMFullResponseStartFrame`` or ``TTSSpeakFrame``, through Pipecat's
  ``on_turn_context_created`` hook) and when a speculation starts (wire
  :meth:`~WarmElevenLabsTTSService.handle_speculation_started` to the strategy's
  ``on_speculation_started``), whichever comes first. The next response adopts that context, so
  its first sentence is plain text on a context that is already set up.
- **Unused contexts are cleaned up and kept alive.** A pre-opened context is kept alive with the
  socket's keepalive; one the response it was opened for never used (an interruption before any
  text) is closed, so contexts never pile up on the server; a voice-settings change closes
  them, since they carry the old settings.
- **Timed warmup.** The connection in ``setup()`` is bounded by ``warmup_timeout_secs`` (stock
  waits for websockets' 10 s open timeout) and logged as ``ElevenLabs warmup complete in N ms``;
  every reconnection after a drop is timed too and a context is pre-opened on the new socket.
  Both are reported to ``warmup_listener`` / ``on_warmup``. A failed connection is a warning;
  the bot still starts, and ``run_tts`` connects on demand.

What it does when the socket misbehaves (each one reproduced on the stand-in, see
``docs/reliability.md``):

- **A message that is not JSON, or an audio message whose audio is not base64**, is skipped with
  a warning (``skip_malformed_messages``); stock ends the receive loop on it, and the socket with
  the sentence being spoken. The rest of the sentence plays; the one bad message's audio is lost.
- **A drop mid-sentence** cuts the sentences being spoken, and says so: each context still
  waiting for audio gets an ``ErrorFrame`` upstream ("... cut") and its ``TTSStoppedFrame`` at
  once, then the socket reconnects as stock does. Stock leaves such a context silent until its
  audio times out, holding the next sentence behind it, with no error and no stop frame. The cut
  sentence is not spoken again: part of it was heard.
- **An ``isFinal`` that never comes**: Pipecat ends a context whose audio stopped for its stop
  timeout (3 s), without a stop frame; here that is logged as a warning and the context's
  ``TTSStoppedFrame`` is pushed, so whatever waits for the end of the speech is not left open.

``warm=False`` leaves the service exactly stock (the bench's ``--no-warm``) apart from those.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import uuid
from functools import partial
from typing import Any

from loguru import logger
from pipecat.frames.frames import ErrorFrame, Frame, InterruptionFrame, TTSStoppedFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.settings import TTSSettings
from websockets.exceptions import InvalidStatus
from websockets.protocol import State

from pipecat_speculative.pipecat_compat import (
    call_event_handler,
    register_event_handler,
    tts_reuses_turn_context_id,
    tts_turn_context_id,
    tts_websocket,
)
from pipecat_speculative.secret_log_filter import install_secret_log_filter
from pipecat_speculative.services.malformed_json_guard import MalformedJSONGuard
from pipecat_speculative.services.warmup_report import (
    WarmupKind,
    WarmupListener,
    WarmupRecorder,
    WarmupReport,
)

__all__ = ["WarmElevenLabsTTSService"]

install_secret_log_filter()

_SERVICE = "elevenlabs"


class WarmElevenLabsTTSService(ElevenLabsTTSService):
    """``ElevenLabsTTSService`` with its socket and next context ready; see the module docstring.

    Args:
        warm: False leaves the service stock.
        warmup_timeout_secs: Budget of one connection attempt (the WebSocket open timeout), at
            setup and on every reconnection. Bounds how long a dead endpoint can hold the
            pipeline's setup.
        warmup_listener: ``listener(service, secs, ok)``, e.g. ``observer.record_warmup``.
        skip_malformed_messages: Skip a message that is not JSON, or whose audio is not base64,
            instead of letting it end the socket (and the sentence being spoken).
        **kwargs: ``ElevenLabsTTSService`` arguments.
    """

    def __init__(
        self,
        *,
        warm: bool = True,
        warmup_timeout_secs: float = 5.0,
        warmup_listener: WarmupListener | None = None,
        skip_malformed_messages: bool = True,
        **kwargs: Any,
    ):
        if warmup_timeout_secs <= 0:
            raise ValueError("warmup_timeout_secs must be > 0")
        super().__init__(**kwargs)
        self._warm = warm
        self._warmup_timeout_secs = warmup_timeout_secs
        self._warmups = WarmupRecorder(
            listener=warmup_listener, emit=partial(call_event_handler, self)
        )
        register_event_handler(self, "on_warmup", sync=True)
        # Contexts opened ahead of their text and not used yet -> the socket they live on.
        self._preopened: dict[str, object] = {}
        # The pre-opened context waiting for the next response (adopted by create_context_id).
        self._pending_context_id: str | None = None
        self._has_connected = False
        self._refused_status: int | None = None
        self._skip_malformed_messages = skip_malformed_messages
        self.malformed_messages_skipped = 0
        """Messages that were not JSON or had undecodable audio, skipped instead of ending the socket."""
        # Contexts whose isFinal arrived and whose playback has not completed yet.
        self._finished_contexts: set[str] = set()
        # Contexts cut by a drop, whose playback has not completed yet.
        self._cut_contexts: set[str] = set()
        self.contexts_cut = 0
        """Contexts a dropped socket cut mid-sentence (each reported with an ErrorFrame)."""
        self.contexts_without_final = 0
        """Contexts that ended without their isFinal (after Pipecat's audio timeout)."""
        self.contexts_preopened = 0
        """Contexts opened ahead of their text."""
        self.preopened_contexts_used = 0
        """Of those, contexts whose text came (the rest were closed unused or lost in a drop)."""

    # -- public ---------------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """Whether warming is on."""
        return self._warm

    @property
    def warmup_reports(self) -> list[WarmupReport]:
        """Every warmup reported so far (connection, reconnections), oldest first."""
        return self._warmups.reports

    @property
    def pending_context_id(self) -> str | None:
        """The context pre-opened for the next response, if any."""
        return self._pending_context_id if self._pending_usable() else None

    async def prepare_context(self) -> str | None:
        """Open the server-side context of the next response now, before its text.

        Idempotent: while a pre-opened context waits for its response, the same one is returned.

        Returns:
            The context id, or None when warming is off or the socket is not open.
        """
        if not self._warm or not self._socket_open():
            return None
        if self._pending_usable():
            return self._pending_context_id
        context_id = str(uuid.uuid4())
        if await self._preopen(context_id):
            self._pending_context_id = context_id
            return context_id
        return None

    async def handle_speculation_started(self, strategy: object, record: object) -> None:
        """Event handler for a strategy's ``on_speculation_started``: prepare the next context.

        ``strategy.add_event_handler("on_speculation_started", tts.handle_speculation_started)``.
        """
        await self.prepare_context()

    async def warmup(self) -> WarmupReport | None:
        """Connect if needed and pre-open the next context; returns the latest report.

        For the bench: the pipeline's setup already connects, so this normally only confirms.
        """
        if not self._warm:
            return None
        if not self._socket_open():
            await self._connect()
        await self.prepare_context()
        return self._warmups.last

    # -- connection -----------------------------------------------------------------------------

    async def _websocket_connect(self, uri: str, **kwargs: Any):
        if self._warm:
            kwargs.setdefault("open_timeout", self._warmup_timeout_secs)
        self._refused_status = None
        try:
            websocket = await super()._websocket_connect(uri, **kwargs)
        except InvalidStatus as e:
            # Kept for the warmup report: Pipecat's own handler only logs the exception text.
            self._refused_status = e.response.status_code
            raise
        # Pipecat's receive loop ends on the first message json.loads (or the base64 decoder)
        # refuses, and the sentence being spoken with it; skipping the one message keeps the
        # rest. The guard also notes which contexts got their isFinal.
        return MalformedJSONGuard(
            websocket,
            self._on_malformed_message,
            inspect=self._inspect_message,
            on_invalid=self._on_invalid_message,
            skip_unparseable=self._skip_malformed_messages,
        )

    def _on_malformed_message(self, message: str) -> None:
        self.malformed_messages_skipped += 1
        logger.warning(
            f"{self}: skipped an ElevenLabs message that is not JSON ({len(message)} chars); "
            "the socket and the audio after it are kept"
        )

    def _inspect_message(self, message: Any) -> str | None:
        if not isinstance(message, dict):
            return None
        context_id = message.get("contextId")
        if message.get("isFinal") is True and isinstance(context_id, str):
            if self.audio_context_available(context_id):
                self._finished_contexts.add(context_id)
            return None
        audio = message.get("audio")
        if not self._skip_malformed_messages or not audio:
            return None
        try:
            base64.b64decode(audio)  # what Pipecat does with it next
        except (binascii.Error, TypeError, ValueError):
            return "its audio is not base64"
        return None

    def _on_invalid_message(self, message: str, reason: str) -> None:
        self.malformed_messages_skipped += 1
        logger.warning(
            f"{self}: skipped an ElevenLabs message ({reason}); the socket and the audio after "
            "it are kept"
        )

    async def _reconnect_websocket(self, attempt_number: int) -> bool:
        """Say which sentences the drop cut, then reconnect as stock does."""
        await self._cut_unfinished_contexts()
        return await super()._reconnect_websocket(attempt_number)

    async def _cut_unfinished_contexts(self) -> None:
        for context_id in list(self.get_audio_contexts()):
            if context_id in self._finished_contexts or context_id in self._cut_contexts:
                continue  # all its audio came; or already cut
            self._cut_contexts.add(context_id)
            self.contexts_cut += 1
            message = (
                f"{self}: the ElevenLabs connection dropped mid-sentence; the rest of context "
                f"{context_id} was not synthesized (cut)"
            )
            await self.append_to_audio_context(context_id, ErrorFrame(error=message))
            await self.append_to_audio_context(context_id, TTSStoppedFrame(context_id=context_id))
            await self.remove_audio_context(context_id)

    async def on_audio_context_completed(self, context_id: str):
        """Close a context that ended without its ``isFinal`` with a stop frame, and say so."""
        await super().on_audio_context_completed(context_id)
        if context_id in self._cut_contexts:
            self._cut_contexts.discard(context_id)
            return
        if context_id in self._finished_contexts:
            self._finished_contexts.discard(context_id)
            return
        self.contexts_without_final += 1
        logger.warning(
            f"{self}: ElevenLabs never sent isFinal for context {context_id}; it ended when its "
            "audio stopped coming"
        )
        await self.push_frame(TTSStoppedFrame(context_id=context_id))

    async def _connect_websocket(self):
        if not self._warm or self._socket_open():
            await super()._connect_websocket()
            return
        kind = WarmupKind.RECONNECT if self._has_connected else WarmupKind.INITIAL
        start = time.monotonic()
        await super()._connect_websocket()
        secs = time.monotonic() - start
        ok = self._socket_open()
        refused = self._refused_status
        if ok:
            error = None
        elif refused is not None:
            error = f"handshake refused (HTTP {refused})"
        else:
            error = "WebSocket connection failed"
        report = WarmupReport(
            service=_SERVICE,
            kind=kind,
            secs=secs,
            ok=ok,
            connections=1 if ok else 0,
            error=error,
        )
        if ok:
            self._has_connected = True
            what = "warmup complete" if kind is WarmupKind.INITIAL else "reconnected and warm"
            logger.info(f"{self}: ElevenLabs {what} in {report.ms} ms")
        elif refused in (401, 403):
            logger.error(
                f"{self}: ElevenLabs warmup failed: API key refused (HTTP {refused}); speech "
                "will fail until the key is fixed"
            )
        else:
            logger.warning(
                f"{self}: ElevenLabs warmup failed after {report.ms} ms; the socket is opened "
                "again when there is text to speak"
            )
        await self._warmups.record(report)

    async def _on_websocket_connected(self):
        await super()._on_websocket_connected()
        if self._warm:
            await self.prepare_context()

    def _clear_connection_state(self):
        super()._clear_connection_state()
        self._preopened.clear()
        self._pending_context_id = None

    # -- contexts -------------------------------------------------------------------------------

    def create_context_id(self) -> str:
        """Hand the pre-opened context to the response that is starting, if there is one."""
        reusing = tts_reuses_turn_context_id(self) and tts_turn_context_id(self)
        if self._warm and not reusing and self._pending_usable():
            context_id = self._pending_context_id
            assert context_id is not None
            self._pending_context_id = None
            logger.trace(f"{self}: response adopts pre-opened context {context_id}")
            return context_id
        return super().create_context_id()

    async def on_turn_context_created(self, context_id: str):
        """Open the turn's context now, before its first sentence (unless already open)."""
        await super().on_turn_context_created(context_id)
        if self._warm and self._socket_open() and context_id not in self._preopened:
            await self._preopen(context_id)

    async def on_turn_context_completed(self):
        """Close the turn's context as stock does, then get the next response's one ready."""
        await super().on_turn_context_completed()
        if self._warm:
            await self.prepare_context()

    async def _send_context_init(self, context_id: str):
        socket = tts_websocket(self)
        if socket is not None and self._preopened.get(context_id) is socket:
            # Opened ahead of its text on this socket: its voice settings went out already, and
            # ElevenLabs refuses a second context-init.
            del self._preopened[context_id]
            self.preopened_contexts_used += 1
            logger.trace(f"{self}: context {context_id} was pre-opened")
            return
        await super()._send_context_init(context_id)

    async def _close_context(self, context_id: str):
        self._preopened.pop(context_id, None)
        if self._pending_context_id == context_id:
            self._pending_context_id = None
        await super()._close_context(context_id)

    async def _send_keepalive(self):
        await super()._send_keepalive()
        if not self._warm or not self._socket_open():
            return
        active = self.get_active_audio_context_id()
        current = tts_websocket(self)
        for context_id, socket in list(self._preopened.items()):
            if socket is current and context_id != active:
                await current.send(json.dumps({"text": "", "context_id": context_id}))

    async def _update_settings(self, delta: TTSSettings) -> dict[str, Any]:
        changed = await super()._update_settings(delta)
        if self._warm and changed.keys() & self.Settings.VOICE_SETTINGS_FIELDS:
            had_pending = self._pending_context_id is not None
            await self._close_unused_contexts(keep_pending=False)
            if had_pending:
                await self.prepare_context()
        return changed

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Process as stock, then close contexts an interruption left unused."""
        await super().process_frame(frame, direction)
        if isinstance(frame, InterruptionFrame):
            # Interrupted contexts never complete: forget them here, so nothing accumulates.
            live = set(self.get_audio_contexts())
            self._finished_contexts &= live
            self._cut_contexts &= live
        if self._warm and isinstance(frame, InterruptionFrame):
            await self._close_unused_contexts(keep_pending=True)
            await self.prepare_context()

    # -- internals ------------------------------------------------------------------------------

    def _socket_open(self) -> bool:
        socket = tts_websocket(self)
        return socket is not None and socket.state is State.OPEN

    def _pending_usable(self) -> bool:
        context_id = self._pending_context_id
        return (
            context_id is not None
            and self._socket_open()
            and self._preopened.get(context_id) is tts_websocket(self)
        )

    async def _preopen(self, context_id: str) -> bool:
        try:
            await super()._send_context_init(context_id)
        except Exception as e:  # the receive loop deals with a broken socket
            logger.debug(f"{self}: could not pre-open context {context_id}: {e}")
            return False
        self._preopened[context_id] = tts_websocket(self)
        self.contexts_preopened += 1
        logger.trace(f"{self}: pre-opened context {context_id}")
        return True

    async def _close_unused_contexts(self, *, keep_pending: bool) -> None:
        """Close pre-opened contexts no response will use (the current turn's is kept)."""
        for context_id in list(self._preopened):
            if context_id == tts_turn_context_id(self):
                continue
            if keep_pending and context_id == self._pending_context_id:
                continue
            logger.debug(f"{self}: closing unused pre-opened context {context_id}")
            await self._close_context(context_id)
