"""ElevenLabs text-to-speech stand-in (loopback), WebSocket multi-context and HTTP streaming.

Speaks enough of the ElevenLabs API for Pipecat's ``ElevenLabsTTSService`` (``url=server.ws_url``)
and ``ElevenLabsHttpTTSService`` (``base_url=server.base_url``) to run unchanged:

**WebSocket** ``GET /v1/text-to-speech/{voice}/multi-stream-input?model_id=...&output_format=pcm_16000
&auto_mode=true[&inactivity_timeout=20]`` with header ``xi-api-key``. Client messages carry
``context_id``; server messages carry ``contextId``:

- ``{"text": " ", "context_id": C}`` opens context C (optionally with ``voice_settings``).
- ``{"text": "...", "context_id": C}`` adds text. With ``auto_mode=true`` each text message is
  generated as it arrives; otherwise text is buffered until 120 characters, a ``flush`` or the
  close (ElevenLabs' first chunk-length schedule step).
- ``{"context_id": C, "flush": true}`` generates the buffered text now.
- ``{"context_id": C, "close_context": true}`` generates what was sent, then answers
  ``{"isFinal": true, "contextId": C}`` after the context's last audio (never before a close;
  Pipecat sends flush + close at the end of every response and waits for ``isFinal`` to stop).
- ``{"text": ""}`` (optionally with a context) is a keepalive; ``{"close_socket": true}`` closes
  the socket. A socket with no message for ``inactivity_timeout`` seconds (20 by default, as at
  ElevenLabs) and no audio in progress is closed with code 1008.
- Audio: ``{"audio": <base64 PCM16 mono>, "contextId": C, "isFinal": false, "alignment":
  {"chars", "charStartTimesMs", "charDurationsMs"}, "normalizedAlignment": {...}}``; alignment
  times restart at 0 in every message and tile the message's audio exactly, so a client's word
  clock (which advances by each message's last start + duration) stays on the audio.

**HTTP** ``POST /v1/text-to-speech/{voice}[/stream]`` (raw PCM16 bytes, streamed for ``/stream``)
and ``POST /v1/text-to-speech/{voice}[/stream]/with-timestamps`` (JSON; newline-delimited JSON
objects ``{"audio_base64", "alignment": {"characters", "character_start_times_seconds",
"character_end_times_seconds"}, "normalized_alignment"}`` for the stream, times from the start of
the request's audio). ``GET /v1/voices`` and ``GET /v1/models`` are cheap warmup targets.

Only ``pcm_<rate>`` output formats are produced (``pcm_16000`` when none is given); anything else
(mp3, ulaw) is refused with 422 rather than mislabelled. Audio is real Piper speech when the
``local`` extra is installed, else a labelled synthetic signal (:mod:`.speech_engine`); synthesis
runs in a thread so one connection never stalls another.

Timing: the first audio of a context comes ``tts_first_audio_secs`` after its first text (plus the
``"elevenlabs"`` new-connection penalty on the handshake of a new socket); later audio is paced at
``tts_speed_factor`` times real time.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web
from loguru import logger

from pipecat_speculative.standins.base import StandinServer
from pipecat_speculative.standins.faults import Fault, FaultKind
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.speech_engine import (
    SpeechEngine,
    SpeechEngineChoice,
    get_speech_engine,
)

__all__ = ["ElevenLabsStandin", "TTSContextRecord", "TTSStats", "parse_output_format"]

_AUTO_MODE_OFF_BUFFER_CHARS = 120
_CHUNK_SECS = 0.25
_WS_MAX_MESSAGE = 16 * 1024 * 1024


def parse_output_format(value: str | None) -> int | None:
    """Sample rate of a ``pcm_<rate>`` output format (16000 when absent), None if unsupported."""
    if not value:
        return 16000
    kind, _, rate = value.partition("_")
    if kind != "pcm" or not rate.isdigit():
        return None
    sample_rate = int(rate)
    return sample_rate if 8000 <= sample_rate <= 48000 else None


@dataclass
class TTSContextRecord:
    """One WebSocket context, for tests and the bench.

    Parameters:
        socket_id: Sequential id of the WebSocket it lived on.
        context_id: The client's context id.
        opened_at: ``time.monotonic()`` of its first message.
        text: All text received for it (the opening space excluded).
        characters: Characters actually synthesized (what ElevenLabs bills).
        audio_messages: Audio messages sent.
        audio_secs: Seconds of audio sent.
        first_text_at: When its first non-blank text arrived.
        first_audio_at: When its first audio message was sent.
        close_requested_at: When ``close_context`` arrived.
        final_sent_at: When ``isFinal`` was sent.
    """

    socket_id: int
    context_id: str
    opened_at: float
    text: str = ""
    characters: int = 0
    audio_messages: int = 0
    audio_secs: float = 0.0
    first_text_at: float | None = None
    first_audio_at: float | None = None
    close_requested_at: float | None = None
    final_sent_at: float | None = None

    @property
    def first_audio_secs(self) -> float | None:
        """First audio after first text, or None."""
        if self.first_text_at is None or self.first_audio_at is None:
            return None
        return self.first_audio_at - self.first_text_at


@dataclass
class TTSStats:
    """Synthesis counters of the TTS stand-in.

    Parameters:
        contexts_opened: WebSocket contexts opened.
        contexts_finalized: ``isFinal`` messages sent.
        characters_synthesized: Characters synthesized over all endpoints (billing).
        audio_secs_sent: Seconds of audio sent over all endpoints.
        contexts: Every WebSocket context, in order of opening.
    """

    contexts_opened: int = 0
    contexts_finalized: int = 0
    characters_synthesized: int = 0
    audio_secs_sent: float = 0.0
    contexts: list[TTSContextRecord] = field(default_factory=list)


_CLOSE = object()


@dataclass
class _Context:
    record: TTSContextRecord
    queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)
    buffer: str = ""
    closing: bool = False
    busy: bool = False
    task: asyncio.Task[None] | None = None
    disconnect: Fault | None = None
    malformed: Fault | None = None
    first_queued_at: float | None = None


@dataclass
class _Socket:
    id: int
    ws: web.WebSocketResponse
    request: web.Request
    sample_rate: int
    auto_mode: bool
    contexts: dict[str, _Context] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    dropped: bool = False


def _alignment_chunks(
    text: str, pcm: bytes, sample_rate: int, chunk_secs: float
) -> list[tuple[bytes, list[str], list[int], list[int]]]:
    """Split one synthesized text into messages: (audio, chars, start ms, duration ms).

    Characters get equal shares of the audio; a message holds whole characters and exactly the
    audio they span, with times relative to the message start.
    """
    samples = len(pcm) // 2
    chars = list(text)
    if not chars or samples == 0:
        return [(pcm, [], [], [])] if pcm else []
    per_char = samples / len(chars)
    step = max(1, round(chunk_secs * sample_rate / per_char))
    out = []
    for start in range(0, len(chars), step):
        end = min(len(chars), start + step)
        s0 = round(start * per_char)
        s1 = samples if end == len(chars) else round(end * per_char)
        starts = [round((i * per_char - s0) * 1000 / sample_rate) for i in range(start, end)]
        ends = [
            round(((i + 1) * per_char - s0) * 1000 / sample_rate) for i in range(start, end - 1)
        ]
        ends.append(round((s1 - s0) * 1000 / sample_rate))
        durations = [max(0, e - s) for s, e in zip(starts, ends, strict=True)]
        out.append((pcm[s0 * 2 : s1 * 2], chars[start:end], starts, durations))
    return out


class ElevenLabsStandin(StandinServer):
    """Loopback ElevenLabs TTS server (WebSocket multi-context + HTTP streaming).

    Use ``url=server.ws_url`` for ``ElevenLabsTTSService`` and ``base_url=server.base_url`` for
    ``ElevenLabsHttpTTSService``.

    Args:
        profile: Latency profile (``tts_first_audio_secs``, ``tts_speed_factor``, the
            ``"elevenlabs"`` new-connection penalty).
        speech: ``"auto"`` (Piper if installed, else synthetic), ``"piper"``, ``"synthetic"``,
            or a :class:`SpeechEngine` instance.
        inactivity_timeout_secs: Default idle time after which a socket is closed (a client may
            ask for another with ``inactivity_timeout``); None never closes idle sockets.
        chunk_secs: Audio per WebSocket message / HTTP chunk.
        **kwargs: :class:`StandinServer` options.
    """

    service = "elevenlabs"

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        speech: SpeechEngineChoice | SpeechEngine = "auto",
        inactivity_timeout_secs: float | None = 20.0,
        chunk_secs: float = _CHUNK_SECS,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("client_max_size", 4 * 1024**2)
        super().__init__(profile=profile, **kwargs)
        if chunk_secs <= 0:
            raise ValueError("chunk_secs must be > 0")
        self._speech_choice = speech
        self.engine: SpeechEngine | None = None if isinstance(speech, str) else speech
        self.inactivity_timeout_secs = inactivity_timeout_secs
        self.chunk_secs = chunk_secs
        self.tts_stats = TTSStats()
        self._socket_ids = itertools.count(1)

    def _describe(self) -> str:
        return f"audio: {self.engine.name if self.engine else 'not loaded'}"

    async def _on_started(self) -> None:
        if self.engine is None:
            assert isinstance(self._speech_choice, str)
            self.engine = await asyncio.to_thread(get_speech_engine, self._speech_choice)

    def _setup_routes(self, app: web.Application) -> None:
        base = "/v1/text-to-speech/{voice}"
        app.router.add_get(f"{base}/multi-stream-input", self._multi_stream_input)
        app.router.add_post(base, self._http_tts)
        app.router.add_post(f"{base}/stream", self._http_tts)
        app.router.add_post(f"{base}/with-timestamps", self._http_tts)
        app.router.add_post(f"{base}/stream/with-timestamps", self._http_tts)
        app.router.add_get("/v1/voices", self._voices)
        app.router.add_get("/v1/models", self._models)

    def _authorized(self, request: web.Request) -> bool:
        return self._key_ok(request.headers.get("xi-api-key"))

    def _error_response(
        self, status: int, message: str, *, retry_after_secs: float | None = None
    ) -> web.Response:
        statuses = {
            401: "invalid_api_key",
            422: "invalid_request",
            429: "too_many_concurrent_requests",
        }
        body = {"detail": {"status": statuses.get(status, "error"), "message": message}}
        headers = {}
        if retry_after_secs is not None:
            headers["Retry-After"] = f"{retry_after_secs:g}"
        return web.json_response(body, status=status, headers=headers)

    async def _synthesize(self, text: str, sample_rate: int) -> bytes:
        assert self.engine is not None
        pcm = await asyncio.to_thread(self.engine.synthesize, text, sample_rate)
        self.tts_stats.characters_synthesized += len(text)
        self.tts_stats.audio_secs_sent += len(pcm) / 2 / sample_rate
        return pcm

    # -- cheap endpoints ----------------------------------------------------------------------

    async def _voices(self, request: web.Request) -> web.Response:
        voice = {"voice_id": "standin", "name": "Stand-in", "category": "premade"}
        return web.json_response({"voices": [voice]})

    async def _models(self, request: web.Request) -> web.Response:
        models = ["eleven_flash_v2_5", "eleven_turbo_v2_5", "eleven_multilingual_v2"]
        return web.json_response([{"model_id": m, "can_do_text_to_speech": True} for m in models])

    # -- HTTP synthesis -----------------------------------------------------------------------

    async def _http_tts(self, request: web.Request) -> web.StreamResponse:
        record = self.record_of(request)
        sample_rate = parse_output_format(request.query.get("output_format"))
        if sample_rate is None:
            return self._error_response(
                422, "The stand-in produces pcm_<rate> output formats only."
            )
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return self._error_response(400, "Invalid JSON body.")
        text = body.get("text") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return self._error_response(422, "Field 'text' is required.")
        route = self.record_of(request).route
        streaming = "/stream" in route
        timestamps = route.endswith("/with-timestamps")
        started = time.monotonic()
        pcm = await self._synthesize(text, sample_rate)
        record.info.update(characters=len(text), audio_secs=len(pcm) / 2 / sample_rate)
        first_audio = self.profile.delay(self.profile.tts_first_audio_secs)
        await asyncio.sleep(max(0.0, first_audio - (time.monotonic() - started)))
        chunks = _alignment_chunks(text, pcm, sample_rate, self.chunk_secs)

        if not streaming:
            if timestamps:
                return web.json_response(self._timestamps_json(pcm, chunks, sample_rate))
            return web.Response(body=pcm, content_type="application/octet-stream")

        disconnect = self._take_fault(FaultKind.DISCONNECT, request)
        malformed = self._take_fault(FaultKind.MALFORMED, request)
        response = web.StreamResponse(
            headers={
                "Content-Type": "application/json" if timestamps else "application/octet-stream"
            }
        )
        try:
            await response.prepare(request)
            offset_ms = 0
            for i, (audio, chars, starts, durations) in enumerate(chunks):
                if i > 0:
                    await asyncio.sleep(
                        self.profile.delay(len(audio) / 2 / sample_rate)
                        / self.profile.tts_speed_factor
                    )
                if disconnect is not None and i >= disconnect.after:
                    self._abort(request)
                    return response
                if malformed is not None and i >= malformed.after:
                    bad = self._malformed_json(malformed, {"alignment": None})
                    await response.write(f"{bad}\n".encode() if timestamps else b"\x00")
                    malformed = None
                if timestamps:
                    alignment = {
                        "characters": chars,
                        "character_start_times_seconds": [(offset_ms + s) / 1000 for s in starts],
                        "character_end_times_seconds": [
                            (offset_ms + s + d) / 1000
                            for s, d in zip(starts, durations, strict=True)
                        ],
                    }
                    line = {
                        "audio_base64": base64.b64encode(audio).decode(),
                        "alignment": alignment,
                        "normalized_alignment": alignment,
                    }
                    await response.write(json.dumps(line).encode() + b"\n")
                else:
                    await response.write(audio)
                offset_ms += round(len(audio) / 2 / sample_rate * 1000)
            await response.write_eof()
        except ConnectionError:
            record.info["client_disconnected"] = True
        return response

    def _timestamps_json(
        self, pcm: bytes, chunks: list[tuple[bytes, list[str], list[int], list[int]]], rate: int
    ) -> dict[str, Any]:
        chars: list[str] = []
        starts: list[float] = []
        ends: list[float] = []
        offset_ms = 0
        for audio, c, s, d in chunks:
            chars += c
            starts += [(offset_ms + x) / 1000 for x in s]
            ends += [(offset_ms + x + y) / 1000 for x, y in zip(s, d, strict=True)]
            offset_ms += round(len(audio) / 2 / rate * 1000)
        alignment = {
            "characters": chars,
            "character_start_times_seconds": starts,
            "character_end_times_seconds": ends,
        }
        return {
            "audio_base64": base64.b64encode(pcm).decode(),
            "alignment": alignment,
            "normalized_alignment": alignment,
        }

    # -- WebSocket multi-stream-input ---------------------------------------------------------

    async def _multi_stream_input(self, request: web.Request) -> web.StreamResponse:
        sample_rate = parse_output_format(request.query.get("output_format"))
        if sample_rate is None:
            return self._error_response(
                422, "The stand-in produces pcm_<rate> output formats only."
            )
        timeout = self.inactivity_timeout_secs
        if "inactivity_timeout" in request.query:
            try:
                timeout = float(request.query["inactivity_timeout"])
            except ValueError:
                return self._error_response(422, "inactivity_timeout must be a number.")
        ws = web.WebSocketResponse(timeout=2.0, max_msg_size=_WS_MAX_MESSAGE)
        await ws.prepare(request)
        self._track_websocket(ws)
        sock = _Socket(
            id=next(self._socket_ids),
            ws=ws,
            request=request,
            sample_rate=sample_rate,
            auto_mode=request.query.get("auto_mode", "false").lower() == "true",
        )
        self.record_of(request).info.update(socket_id=sock.id, sample_rate=sample_rate)
        logger.debug(
            f"{self}: socket {sock.id} open (voice={request.match_info['voice']}, "
            f"model={request.query.get('model_id')}, {sample_rate} Hz, auto_mode={sock.auto_mode})"
        )
        try:
            await self._socket_loop(sock, idle_secs=timeout)
        finally:
            for ctx in sock.contexts.values():
                if ctx.task is not None:
                    ctx.task.cancel()
            tasks = [c.task for c in sock.contexts.values() if c.task is not None]
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            self._untrack_websocket(ws)
            if not ws.closed and not sock.dropped:
                await ws.close()
            logger.debug(f"{self}: socket {sock.id} closed")
        return ws

    async def _socket_loop(self, sock: _Socket, *, idle_secs: float | None) -> None:
        ws = sock.ws
        while not ws.closed:
            try:
                msg = await ws.receive(timeout=idle_secs)
            except TimeoutError:
                if any(c.busy or not c.queue.empty() for c in sock.contexts.values()):
                    continue
                logger.debug(f"{self}: socket {sock.id} idle for {idle_secs}s, closing")
                await self._send(sock, {"message": "Input timeout exceeded", "error": "timeout"})
                await ws.close(code=WSCloseCode.POLICY_VIOLATION, message=b"Input timeout")
                return
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
                return
            if msg.type is WSMsgType.ERROR:
                return
            if msg.type is not WSMsgType.TEXT:
                await self._policy_close(sock, "Binary messages are not supported.")
                return
            try:
                data = json.loads(msg.data)
            except json.JSONDecodeError:
                await self._policy_close(sock, "Invalid JSON message.")
                return
            if not isinstance(data, dict):
                await self._policy_close(sock, "Messages must be JSON objects.")
                return
            if not await self._handle_message(sock, data):
                return

    async def _policy_close(self, sock: _Socket, message: str) -> None:
        await self._send(sock, {"message": message, "error": "invalid_message", "code": 1008})
        await sock.ws.close(code=WSCloseCode.POLICY_VIOLATION, message=message.encode()[:120])

    async def _handle_message(self, sock: _Socket, data: dict[str, Any]) -> bool:
        """Handle one client message; False when the socket should close."""
        if data.get("close_socket"):
            logger.debug(f"{self}: socket {sock.id} close_socket")
            await sock.ws.close(code=WSCloseCode.OK)
            return False
        context_id = data.get("context_id")
        text = data.get("text")
        if text is not None and not isinstance(text, str):
            await self._policy_close(sock, "'text' must be a string.")
            return False
        if text == "" and not data.get("flush") and not data.get("close_context"):
            return True  # keepalive
        if context_id is None:
            context_id = "default"
        ctx = sock.contexts.get(context_id)
        if data.get("close_context"):
            if ctx is None or ctx.closing:
                logger.debug(f"{self}: close_context for unknown context {context_id}")
                return True
            ctx.record.close_requested_at = time.monotonic()
            self._enqueue(ctx, flush=True)
            ctx.closing = True
            ctx.queue.put_nowait(_CLOSE)
            return True
        if ctx is None:
            record = TTSContextRecord(
                socket_id=sock.id, context_id=context_id, opened_at=time.monotonic()
            )
            ctx = _Context(record=record)
            sock.contexts[context_id] = ctx
            self.tts_stats.contexts_opened += 1
            self.tts_stats.contexts.append(record)
            ctx.task = self.create_task(self._context_worker(sock, ctx), f"context-{context_id}")
        elif ctx.closing:
            logger.debug(f"{self}: text for closed context {context_id} ignored")
            return True
        if text and text.strip():
            if ctx.record.first_text_at is None:
                ctx.record.first_text_at = time.monotonic()
            ctx.record.text += text
            ctx.buffer += text
            if sock.auto_mode or len(ctx.buffer) >= _AUTO_MODE_OFF_BUFFER_CHARS:
                self._enqueue(ctx, flush=True)
        if data.get("flush"):
            self._enqueue(ctx, flush=True)
        return True

    def _enqueue(self, ctx: _Context, *, flush: bool) -> None:
        if flush and ctx.buffer.strip():
            if ctx.first_queued_at is None:
                ctx.first_queued_at = time.monotonic()
            ctx.queue.put_nowait(ctx.buffer)
        if flush:
            ctx.buffer = ""

    async def _send(self, sock: _Socket, payload: dict[str, Any] | str) -> bool:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        async with sock.lock:
            if sock.ws.closed or sock.dropped:
                return False
            try:
                await sock.ws.send_str(text)
            except ConnectionError:
                return False
        return True

    async def _context_worker(self, sock: _Socket, ctx: _Context) -> None:
        record = ctx.record
        path = sock.request.path
        while True:
            item = await ctx.queue.get()
            if item is _CLOSE:
                if self.faults.take(FaultKind.WITHHOLD_FINAL, path):
                    logger.debug(f"{self}: withholding isFinal of context {record.context_id}")
                elif await self._send(sock, {"isFinal": True, "contextId": record.context_id}):
                    record.final_sent_at = time.monotonic()
                    self.tts_stats.contexts_finalized += 1
                sock.contexts.pop(record.context_id, None)
                return
            ctx.busy = True
            try:
                await self._speak(sock, ctx, item, path)
            finally:
                ctx.busy = False

    async def _speak(self, sock: _Socket, ctx: _Context, text: str, path: str) -> None:
        record = ctx.record
        rate = sock.sample_rate
        pcm = await self._synthesize(text, rate)
        record.characters += len(text)
        if record.first_audio_at is None:
            # Generation starts when text is released (at once in auto mode, else on a flush or
            # a full buffer), so the first-audio latency counts from there.
            assert ctx.first_queued_at is not None
            delay = self.profile.delay(self.profile.tts_first_audio_secs)
            if slow := self.faults.take(FaultKind.SLOW_FIRST_BYTE, path):
                logger.debug(f"{self}: slow first audio (+{slow.delay_secs}s) on {path}")
                delay += slow.delay_secs
            await asyncio.sleep(max(0.0, ctx.first_queued_at + delay - time.monotonic()))
            ctx.disconnect = self.faults.take(FaultKind.DISCONNECT, path)
            ctx.malformed = self.faults.take(FaultKind.MALFORMED, path)
        for audio, chars, starts, durations in _alignment_chunks(text, pcm, rate, self.chunk_secs):
            if record.audio_messages > 0:
                await asyncio.sleep(
                    self.profile.delay(len(audio) / 2 / rate) / self.profile.tts_speed_factor
                )
            if ctx.disconnect is not None and record.audio_messages >= ctx.disconnect.after:
                logger.debug(f"{self}: dropping socket {sock.id} mid-context {record.context_id}")
                sock.dropped = True
                self._abort(sock.request)
                return
            if ctx.malformed is not None and record.audio_messages >= ctx.malformed.after:
                if ctx.malformed.malformed == "invalid_base64":
                    bad = json.dumps(
                        {"audio": "not*base64!", "isFinal": False, "contextId": record.context_id}
                    )
                else:
                    bad = self._malformed_json(
                        ctx.malformed, {"audio": base64.b64encode(audio[:64]).decode()}
                    )
                ctx.malformed = None
                await self._send(sock, bad)
            alignment = {"chars": chars, "charStartTimesMs": starts, "charDurationsMs": durations}
            message = {
                "audio": base64.b64encode(audio).decode(),
                "isFinal": False,
                "contextId": record.context_id,
                "alignment": alignment,
                "normalizedAlignment": alignment,
            }
            if not await self._send(sock, message):
                return
            if record.first_audio_at is None:
                record.first_audio_at = time.monotonic()
            record.audio_messages += 1
            record.audio_secs += len(audio) / 2 / rate
