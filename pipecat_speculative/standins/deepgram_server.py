"""Loopback Deepgram: listen v1 (Nova) and Flux (listen v2) WebSockets driven by scripted words.

The stand-in speaks the real wire protocols (summarized in ``docs/design.md``, "Stand-ins"), so
Pipecat's own ``DeepgramSTTService`` and ``DeepgramFluxSTTService`` run against it unchanged::

    async with DeepgramStandin(profile=LatencyProfile.reference()) as deepgram:
        deepgram.set_script(rendered.script)
        stt = DeepgramSTTService(api_key="test", base_url=deepgram.base_url)
        flux = DeepgramFluxSTTService(api_key="test", url=deepgram.flux_url, ...)

It recognizes no speech. A script (:class:`~pipecat_speculative.standins.stt_script.SttScript`)
says which words the user says; the stand-in releases each word when the audio that carries it
has arrived on the connection, and measures pauses in received audio. Transcripts therefore
follow the audio actually received, not the wall clock.

Which script a connection plays:

- ``set_script(script)`` registers the default script, played by every connection without a
  matching tag;
- ``set_script(script, tag="alice")`` registers a script for connections whose URL carries
  ``tag=alice`` (``DeepgramSTTService(tag="alice")``, ``DeepgramFluxSTTService(tag=["alice"])``),
  so several simulated users can share one stand-in;
- connections playing the same registration share its position: a connection opened after a
  drop continues with the next segment. ``set_script`` again restarts from the beginning.
- the registration is looked up at every speech onset, so a script may be set after the STT
  service has connected (a pipeline already running); a segment being spoken finishes as it
  began.

A connection with no script transcribes nothing (it still answers ``Finalize``).

Latency (:class:`~pipecat_speculative.standins.profile.LatencyProfile`): every transcript message
(interim, final, Finalize answer, Flux Update/StartOfTurn/TurnResumed) is sent
``stt_final_delay_secs`` after the audio or request that caused it; Flux EagerEndOfTurn and
EndOfTurn come after ``flux_eager_eot_secs`` / ``flux_eot_secs`` of received silence; a new
connection's handshake waits ``new_connection_penalty_secs["deepgram"]``. Messages always leave
in the order they were produced.

Faults (``standin.faults``, :class:`~pipecat_speculative.standins.faults.FaultPlan`; paths are
``/v1/listen`` and ``/v2/listen``):

- ``http_error(status)``: the WebSocket handshake is refused with that status (401 is what a bad
  key gets; pipecat gives up at once on a 4xx).
- ``disconnect(after=N)``: the TCP connection is aborted, without a close frame, after N
  transcript messages (Results / TurnInfo) were sent; ``after=1`` drops it mid-utterance, right
  after the first interim. The words of the segment being spoken are lost, unless the client
  sends that segment's audio again on its next connection (byte-identical, as a client re-sending
  its buffered audio does): the same audio is then heard as the same words.
- ``malformed(kind, after=N)``: after N transcript messages, one broken message (not JSON, or a
  ``Results``/``TurnInfo`` without its fields).
- ``slow_first_byte(secs)``: the next final result (v1 ``is_final``, Flux ``EndOfTurn``) is
  delayed ``secs`` more: a delayed final.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web
from loguru import logger

from pipecat_speculative.standins.base import StandinServer
from pipecat_speculative.standins.deepgram_flux import FluxOptions, FluxSession
from pipecat_speculative.standins.deepgram_listen import (
    ListenV1Options,
    ListenV1Session,
    OutgoingMessage,
    QueryError,
)
from pipecat_speculative.standins.faults import Fault, FaultKind, FaultPlan
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import LostSegment, ScriptCursor, SttScript

__all__ = ["DeepgramStandin", "DeepgramStream"]

LISTEN_V1_PATH = "/v1/listen"
LISTEN_V2_PATH = "/v2/listen"

# Messages that carry transcript words wait the STT processing delay; the end-of-turn events of
# Flux are already timed by the silence they measure.
_DELAYED_KINDS = frozenset(
    {
        "interim",
        "final",
        "finalize",
        "speech_started",
        "utterance_end",
        "start_of_turn",
        "update",
        "turn_resumed",
    }
)
_FINAL_KINDS = frozenset({"final", "finalize", "end_of_turn"})
_TRANSCRIPT_KINDS = frozenset(
    {
        "interim",
        "final",
        "finalize",
        "start_of_turn",
        "update",
        "eager_end_of_turn",
        "turn_resumed",
        "end_of_turn",
    }
)


@dataclass
class DeepgramStream:
    """What happened on one WebSocket stream (for assertions).

    Parameters:
        id: 1-based stream number on this stand-in.
        path: ``/v1/listen`` or ``/v2/listen``.
        query: The URL query.
        request_id: The ``request_id`` the connection reported.
        tag: The script registration its URL selected when it opened (None: the default).
        sent: JSON payloads sent, in order.
        finalize_requests: ``Finalize`` messages received.
        keepalives: ``KeepAlive`` messages received.
        close_stream: Whether the client sent ``CloseStream``.
        dropped: Whether a fault aborted it.
        closed: Whether it has ended.
    """

    id: int
    path: str
    query: dict[str, str]
    request_id: str = ""
    tag: str | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)
    finalize_requests: int = 0
    keepalives: int = 0
    close_stream: bool = False
    dropped: bool = False
    closed: bool = False
    _session: ListenV1Session | FluxSession | None = field(default=None, repr=False)

    @property
    def audio_secs(self) -> float:
        """Seconds of audio received."""
        return self._session.position_secs if self._session else 0.0

    def results(self, *, is_final: bool | None = None) -> list[str]:
        """Transcripts of the v1 ``Results`` sent, in order.

        Args:
            is_final: Only finals (True), only interims (False), or all (None).

        Returns:
            The transcripts (empty strings included: an empty Finalize answer is one).
        """
        return [
            m["channel"]["alternatives"][0]["transcript"]
            for m in self.sent
            if m.get("type") == "Results"
            and (is_final is None or bool(m.get("is_final")) == is_final)
        ]

    def turn_events(self) -> list[tuple[str, str]]:
        """``(event, transcript)`` of the Flux ``TurnInfo`` messages sent, in order."""
        return [(m["event"], m["transcript"]) for m in self.sent if m.get("type") == "TurnInfo"]


class _Registration:
    def __init__(self, script: SttScript):
        self.script = script
        self.cursor = ScriptCursor(script)
        self.lost_mid_segment = False
        self.lost_segments: list[LostSegment] = []


class DeepgramStandin(StandinServer):
    """A loopback Deepgram server (listen v1 and Flux v2) on ``127.0.0.1``.

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`. Connection
    accounting, the new-connection penalty, handshake refusals and auth come from
    :class:`~pipecat_speculative.standins.base.StandinServer` (``stats``, ``connections``,
    ``requests``); :attr:`streams` records what each WebSocket carried.
    """

    service = "deepgram"

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        endpointing_floor_secs: float = 0.3,
        **kwargs: Any,
    ):
        """Initialize the stand-in (nothing listens before :meth:`start`).

        Args:
            profile: Latency profile; the reference profile by default.
            api_key: The only key accepted (``Authorization: Token <key>``); None accepts any
                non-empty key. A missing header or another scheme is refused with 401, as
                Deepgram does.
            host: Loopback interface to listen on.
            port: TCP port; 0 picks a free one.
            endpointing_floor_secs: Least silence that ends a v1 utterance on its own (see
                :class:`~pipecat_speculative.standins.deepgram_listen.ListenV1Session`).
            **kwargs: Passed to :class:`StandinServer` (timeouts, body size).
        """
        super().__init__(profile=profile, api_key=api_key, host=host, port=port, **kwargs)
        self._endpointing_floor = endpointing_floor_secs
        self._default: _Registration | None = None
        self._tagged: dict[str, _Registration] = {}
        self._streams: list[DeepgramStream] = []

    # -- StandinServer hooks --------------------------------------------------------------------

    def _setup_routes(self, app: web.Application) -> None:
        app.router.add_get(LISTEN_V1_PATH, self._handle_v1)
        app.router.add_get(LISTEN_V2_PATH, self._handle_v2)

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Token" and self._key_ok(key.strip())

    def _error_response(
        self, status: int, message: str, *, retry_after_secs: float | None = None
    ) -> web.Response:
        headers = {"dg-error": message}
        if retry_after_secs is not None:
            headers["Retry-After"] = f"{retry_after_secs:g}"
        code = {400: "Bad Request", 401: "INVALID_AUTH", 429: "TOO_MANY_REQUESTS"}.get(
            status, "INTERNAL_SERVER_ERROR"
        )
        return web.Response(
            status=status,
            text=json.dumps({"err_code": code, "err_msg": message}),
            headers=headers,
            content_type="application/json",
        )

    def _describe(self) -> str:
        return f"service={self.service}, paths {LISTEN_V1_PATH} {LISTEN_V2_PATH}"

    # -- addresses ------------------------------------------------------------------------------

    @property
    def flux_url(self) -> str:
        """``ws://127.0.0.1:PORT/v2/listen`` for ``DeepgramFluxSTTService(url=...)``."""
        return f"{self.ws_url}{LISTEN_V2_PATH}"

    # -- scripts --------------------------------------------------------------------------------

    def set_script(self, script: SttScript, *, tag: str | None = None) -> None:
        """Register what the user says, for new connections (default, or with ``tag``).

        Args:
            script: The words and where they end in audio.
            tag: Only connections whose URL has ``tag=<tag>``; None for the default script.
        """
        registration = _Registration(script)
        if tag is None:
            self._default = registration
        else:
            self._tagged[tag] = registration
        logger.debug(
            f"{self}: script {'(default)' if tag is None else repr(tag)}: "
            f"{len(script.segments)} segments"
        )

    def clear_scripts(self) -> None:
        """Forget every registered script."""
        self._default = None
        self._tagged.clear()

    def script_progress(self, tag: str | None = None) -> int:
        """How many segments of a registered script connections have started.

        Args:
            tag: The registration; None for the default script.

        Returns:
            The number of segments started (0 when nothing is registered).
        """
        registration = self._default if tag is None else self._tagged.get(tag)
        return registration.cursor.next_index if registration else 0

    # -- streams -------------------------------------------------------------------------------

    @property
    def streams(self) -> list[DeepgramStream]:
        """Every WebSocket stream so far, in order."""
        return list(self._streams)

    @property
    def stream_count(self) -> int:
        """WebSocket streams accepted so far (both paths)."""
        return len(self._streams)

    @property
    def open_streams(self) -> int:
        """Streams currently open."""
        return sum(1 for c in self._streams if not c.closed)

    # -- handlers -------------------------------------------------------------------------------

    def _registration(self, tags: list[str]) -> tuple[_Registration | None, str | None]:
        for tag in tags:
            if tag in self._tagged:
                return self._tagged[tag], tag
        return self._default, None

    async def _handle_v1(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, flux=False)

    async def _handle_v2(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, flux=True)

    async def _handle(self, request: web.Request, *, flux: bool) -> web.StreamResponse:
        path = request.path
        query: Mapping[str, str] = request.query
        try:
            options: ListenV1Options | FluxOptions = (
                FluxOptions.from_query(query) if flux else ListenV1Options.from_query(query)
            )
        except QueryError as e:
            return self._error_response(400, str(e))
        tags = request.query.getall("tag", [])
        registration, tag = self._registration(tags)

        def current_cursor() -> ScriptCursor | None:
            # Looked up at every onset: a script set after the connection opened still plays.
            current, _ = self._registration(tags)
            return current.cursor if current else None

        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        session: ListenV1Session | FluxSession
        if isinstance(options, FluxOptions):
            session = FluxSession(
                options,
                current_cursor,
                eager_eot_secs=self.profile.flux_eager_eot_secs,
                eot_secs=self.profile.flux_eot_secs,
            )
        else:
            session = ListenV1Session(
                options,
                current_cursor,
                interim_interval_secs=self.profile.stt_interim_interval_secs,
                endpointing_floor_secs=self._endpointing_floor,
            )
        if registration is not None and registration.lost_mid_segment:
            # The previous connection dropped mid-speech: the audio now arriving may be the
            # rest of that segment, which must not be taken for the next one's onset.
            session.tracker.require_silence()
            registration.lost_mid_segment = False
            session.tracker.expect_replay(registration.lost_segments)
            registration.lost_segments = []
        conn = DeepgramStream(
            id=len(self._streams) + 1,
            path=path,
            query=dict(query),
            request_id=session.request_id,
            tag=tag,
            _session=session,
        )
        self._streams.append(conn)
        self._track_websocket(ws)
        logger.debug(
            f"{self}: connection {conn.id} on {path} ({'tag ' + tag if tag else 'default'})"
        )
        outbox = _Outbox(self, ws, conn, request)
        try:
            if isinstance(session, FluxSession):
                await outbox.put([session.connected()])
            await self._receive(ws, session, conn, outbox)
        finally:
            await outbox.close()
            unsent = outbox.lost_final_segments
            lost_segments = session.lost_segments(unsent)
            lost = session.close() or bool(unsent)
            current, _ = self._registration(tags)
            if lost and current is not None:
                current.lost_mid_segment = True
                current.lost_segments = lost_segments
            conn.closed = True
            self._untrack_websocket(ws)
            logger.debug(f"{self}: connection {conn.id} closed ({conn.audio_secs:.2f} s audio)")
        return ws

    async def _receive(
        self,
        ws: web.WebSocketResponse,
        session: ListenV1Session | FluxSession,
        conn: DeepgramStream,
        outbox: _Outbox,
    ) -> None:
        async for msg in ws:
            if outbox.dropped:
                break
            if msg.type == WSMsgType.BINARY:
                await outbox.put(session.on_audio(msg.data))
            elif msg.type == WSMsgType.TEXT:
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    logger.warning(f"{self}: connection {conn.id}: unparsable message ignored")
                    continue
                kind = data.get("type") if isinstance(data, dict) else None
                if kind == "KeepAlive":
                    conn.keepalives += 1
                elif kind == "Finalize":
                    conn.finalize_requests += 1
                    if isinstance(session, ListenV1Session):
                        await outbox.put(session.on_finalize())
                elif kind == "CloseStream":
                    conn.close_stream = True
                    if isinstance(session, ListenV1Session):
                        await outbox.put(session.on_close_stream())
                    await outbox.drain()
                    await ws.close()
                    break
                else:
                    logger.debug(f"{self}: connection {conn.id}: ignored message {kind!r}")
            elif msg.type == WSMsgType.ERROR:
                break


class _Outbox:
    """Sends one connection's messages in order, each after its delay, applying faults."""

    def __init__(
        self,
        standin: DeepgramStandin,
        ws: web.WebSocketResponse,
        conn: DeepgramStream,
        request: web.Request,
    ):
        self._standin = standin
        self._ws = ws
        self._conn = conn
        self._request = request
        self._queue: asyncio.Queue[tuple[float, OutgoingMessage] | None] = asyncio.Queue()
        self._last_due = 0.0
        self._transcripts_sent = 0
        self._unsent: OutgoingMessage | None = None
        self.lost_final_segments: list[int] = []
        self.dropped = False
        self._task = standin.create_task(self._run(), f"outbox-{conn.id}")

    async def put(self, messages: list[OutgoingMessage]) -> None:
        profile = self._standin.profile
        now = time.monotonic()
        for message in messages:
            delay = 0.0
            if message.kind in _DELAYED_KINDS:
                delay = profile.delay(profile.stt_final_delay_secs)
            if message.kind in _FINAL_KINDS:
                slow = self._standin.faults.take(FaultKind.SLOW_FIRST_BYTE, self._conn.path)
                if slow is not None:
                    delay += slow.delay_secs
            due = max(self._last_due, now + delay)
            self._last_due = due
            self._queue.put_nowait((due, message))

    async def drain(self) -> None:
        """Wait until everything queued so far is sent (or the connection is gone)."""
        marker: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((self._last_due, OutgoingMessage("_marker", {"future": marker})))
        done, _ = await asyncio.wait([marker, self._task], return_when=asyncio.FIRST_COMPLETED)
        if not marker.done():
            marker.cancel()

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        # Leave nothing pending behind: markers of a drain that was cut short.
        unsent = [self._unsent] if self._unsent is not None else []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item and item[1].kind == "_marker":
                item[1].payload["future"].cancel()
            elif item:
                unsent.append(item[1])
        self.lost_final_segments = [m.segment for m in unsent if m.segment is not None]
        """Segments of the finals never sent (their words are lost)."""

    async def _run(self) -> None:
        while True:
            item = await self._queue.get()
            if item is None:
                return
            due, message = item
            if message.kind == "_marker":
                future = message.payload["future"]
                if not future.done():
                    future.set_result(None)
                continue
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self._ws.closed:
                return
            if message.kind in _TRANSCRIPT_KINDS:
                if await self._apply_faults():
                    self._unsent = message
                    return
                self._transcripts_sent += 1
            try:
                await self._ws.send_str(json.dumps(message.payload))
            except (ConnectionError, RuntimeError):
                return
            self._conn.sent.append(message.payload)

    async def _apply_faults(self) -> bool:
        """Fire an armed disconnect or malformed fault; True when the connection is gone."""
        faults = self._standin.faults
        path = self._conn.path
        for kind in (FaultKind.DISCONNECT, FaultKind.MALFORMED):
            fault = _due(faults, kind, path, self._transcripts_sent)
            if fault is None:
                continue
            if kind is FaultKind.DISCONNECT:
                logger.debug(f"{self._standin}: connection {self._conn.id}: injected drop")
                self._conn.dropped = True
                self.dropped = True
                self._standin._abort(self._request)
                return True
            broken = self._malformed(fault)
            logger.debug(f"{self._standin}: connection {self._conn.id}: injected {broken[:40]!r}")
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(broken)
        return False

    def _malformed(self, fault: Fault) -> str:
        if fault.malformed != "missing_fields":
            return '{"type": "Results", "channel": {"alternatives": [{"transcript": "'
        if self._conn.path == LISTEN_V2_PATH:
            return json.dumps({"type": "TurnInfo", "request_id": self._conn.request_id})
        return json.dumps({"type": "Results", "is_final": True})


def _due(faults: FaultPlan, kind: FaultKind, path: str, sent: int) -> Fault | None:
    """Take an armed fault of ``kind`` whose ``after`` count of messages has been reached."""
    for fault in faults.pending:
        if fault.matches(kind, path) and sent >= fault.after:
            fault.fired += 1
            return fault
    return None
