"""Loopback Deepgram: listen v1 (Nova) and Flux (listen v2) WebSockets driven by scripted words.

The stand-in speaks the real wire protocols (see ``docs/offline.md``) so pipecat's own
``DeepgramSTTService`` and ``DeepgramFluxSTTService`` run against it unchanged::

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
  after the first interim. The words of the segment being spoken are lost.
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

from pipecat_speculative.standins.deepgram_flux import FluxOptions, FluxSession
from pipecat_speculative.standins.deepgram_listen import (
    ListenV1Options,
    ListenV1Session,
    OutgoingMessage,
    QueryError,
)
from pipecat_speculative.standins.faults import Fault, FaultKind, FaultPlan
from pipecat_speculative.standins.profile import LatencyProfile
from pipecat_speculative.standins.stt_script import ScriptCursor, SttScript

__all__ = ["DeepgramConnection", "DeepgramStandin"]

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
class DeepgramConnection:
    """What happened on one WebSocket connection (for assertions).

    Parameters:
        id: 1-based connection number on this stand-in.
        path: ``/v1/listen`` or ``/v2/listen``.
        query: The URL query.
        request_id: The ``request_id`` the connection reported.
        tag: The script registration it played (None for the default).
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

    def transcripts(self, *, event: str | None = None, final: bool | None = None) -> list[str]:
        """Transcripts sent, optionally only one Flux event or only (non-)final v1 results.

        Args:
            event: Flux ``TurnInfo`` event to keep (``"EndOfTurn"``...).
            final: For v1, keep only ``is_final`` results (True) or only interims (False).

        Returns:
            The transcripts, in order.
        """
        out = []
        for message in self.sent:
            if message.get("type") == "Results":
                if final is not None and bool(message.get("is_final")) != final:
                    continue
                if event is not None:
                    continue
                out.append(message["channel"]["alternatives"][0]["transcript"])
            elif message.get("type") == "TurnInfo":
                if event is not None and message.get("event") != event:
                    continue
                if final is not None:
                    continue
                out.append(message.get("transcript", ""))
        return out


class _Registration:
    def __init__(self, script: SttScript):
        self.script = script
        self.cursor = ScriptCursor(script)
        self.lost_mid_segment = False


class DeepgramStandin:
    """A loopback Deepgram server (listen v1 and Flux v2) on ``127.0.0.1``.

    Use it as an async context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        endpointing_floor_secs: float = 0.3,
    ):
        """Initialize the stand-in (nothing listens before :meth:`start`).

        Args:
            profile: Latency profile; :meth:`LatencyProfile.reference` by default.
            api_key: The only key accepted (``Authorization: Token <key>``); None accepts any
                non-empty key. A missing or other header is refused with 401, as Deepgram does.
            host: Interface to listen on (loopback only: nothing here is meant to be reachable).
            port: TCP port; 0 picks a free one.
            endpointing_floor_secs: Least silence that ends a v1 utterance on its own
                (see :class:`ListenV1Session`).
        """
        self.profile = profile or LatencyProfile.reference()
        self.faults = FaultPlan()
        self._api_key = api_key
        self._host = host
        self._port = port
        self._endpointing_floor = endpointing_floor_secs
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._bound_port: int | None = None
        self._default: _Registration | None = None
        self._tagged: dict[str, _Registration] = {}
        self._connections: list[DeepgramConnection] = []
        self._sockets: set[web.WebSocketResponse] = set()
        self._handler_tasks: set[asyncio.Task] = set()

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> DeepgramStandin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Start listening (on a free port unless one was given)."""
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get(LISTEN_V1_PATH, self._handle_v1)
        app.router.add_get(LISTEN_V2_PATH, self._handle_v2)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self._host, self._port)
        await self._site.start()
        server = self._site._server
        assert server is not None and server.sockets  # type: ignore[union-attr]
        self._bound_port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        logger.debug(f"{self}: listening on {self.base_url}")

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._runner is None:
            return
        for ws in list(self._sockets):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"stand-in stopping")
        for task in list(self._handler_tasks):
            task.cancel()
        if self._handler_tasks:
            await asyncio.wait(list(self._handler_tasks), timeout=2.0)
        await self._runner.cleanup()
        self._runner = None
        self._site = None
        logger.debug(f"{self}: stopped")

    def __str__(self) -> str:
        return f"DeepgramStandin({self._bound_port or '-'})"

    # -- addresses ------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._bound_port is None:
            raise RuntimeError("the stand-in is not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``: ``DeepgramSTTService(base_url=...)`` derives ws:// from it."""
        return f"http://{self._host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT``."""
        return f"ws://{self._host}:{self.port}"

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

    # -- counters -------------------------------------------------------------------------------

    @property
    def connections(self) -> list[DeepgramConnection]:
        """Every connection so far, in order."""
        return list(self._connections)

    @property
    def connection_count(self) -> int:
        """Accepted WebSocket connections so far (both paths)."""
        return len(self._connections)

    @property
    def active_connections(self) -> int:
        """Connections currently open."""
        return sum(1 for c in self._connections if not c.closed)

    # -- handlers -------------------------------------------------------------------------------

    def _registration(self, tags: list[str]) -> tuple[_Registration | None, str | None]:
        for tag in tags:
            if tag in self._tagged:
                return self._tagged[tag], tag
        return self._default, None

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        if scheme != "Token" or not key.strip():
            return False
        return self._api_key is None or key.strip() == self._api_key

    async def _handle_v1(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, flux=False)

    async def _handle_v2(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, flux=True)

    async def _handle(self, request: web.Request, *, flux: bool) -> web.StreamResponse:
        path = request.path
        if not self._authorized(request):
            return web.Response(
                status=401,
                text=json.dumps({"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials."}),
                headers={"dg-error": "Invalid credentials."},
                content_type="application/json",
            )
        refusal = self.faults.take(FaultKind.HTTP_ERROR, path)
        if refusal is not None:
            message = refusal.message or "Injected failure."
            return web.Response(
                status=refusal.status,
                text=json.dumps({"err_code": "INJECTED", "err_msg": message}),
                headers={"dg-error": message},
                content_type="application/json",
            )
        query: Mapping[str, str] = request.query
        try:
            options: ListenV1Options | FluxOptions = (
                FluxOptions.from_query(query) if flux else ListenV1Options.from_query(query)
            )
        except QueryError as e:
            return web.Response(
                status=400,
                text=json.dumps({"err_code": "Bad Request", "err_msg": str(e)}),
                headers={"dg-error": str(e)},
                content_type="application/json",
            )
        registration, tag = self._registration(request.query.getall("tag", []))
        penalty = self.profile.connection_penalty("deepgram")
        if penalty > 0:
            await asyncio.sleep(penalty)

        ws = web.WebSocketResponse(heartbeat=None, max_msg_size=16 * 1024 * 1024)
        await ws.prepare(request)
        cursor = registration.cursor if registration else None
        session: ListenV1Session | FluxSession
        if isinstance(options, FluxOptions):
            session = FluxSession(
                options,
                cursor,
                eager_eot_secs=self.profile.flux_eager_eot_secs,
                eot_secs=self.profile.flux_eot_secs,
            )
        else:
            session = ListenV1Session(
                options,
                cursor,
                interim_interval_secs=self.profile.stt_interim_interval_secs,
                endpointing_floor_secs=self._endpointing_floor,
            )
        if registration is not None and registration.lost_mid_segment:
            # The previous connection dropped mid-speech: the audio now arriving may be the
            # rest of that segment, which must not be taken for the next one's onset.
            session.tracker.require_silence()
            registration.lost_mid_segment = False
        conn = DeepgramConnection(
            id=len(self._connections) + 1,
            path=path,
            query=dict(query),
            request_id=session.request_id,
            tag=tag,
            _session=session,
        )
        self._connections.append(conn)
        self._sockets.add(ws)
        task = asyncio.current_task()
        if task is not None:
            self._handler_tasks.add(task)
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
            lost = session.close()
            if lost and registration is not None:
                registration.lost_mid_segment = True
            conn.closed = True
            self._sockets.discard(ws)
            if task is not None:
                self._handler_tasks.discard(task)
            logger.debug(f"{self}: connection {conn.id} closed ({conn.audio_secs:.2f} s audio)")
        return ws

    async def _receive(
        self,
        ws: web.WebSocketResponse,
        session: ListenV1Session | FluxSession,
        conn: DeepgramConnection,
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
        conn: DeepgramConnection,
        request: web.Request,
    ):
        self._standin = standin
        self._ws = ws
        self._conn = conn
        self._request = request
        self._queue: asyncio.Queue[tuple[float, OutgoingMessage] | None] = asyncio.Queue()
        self._last_due = 0.0
        self._transcripts_sent = 0
        self.dropped = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"deepgram-standin-outbox-{conn.id}"
        )

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
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item and item[1].kind == "_marker":
                item[1].payload["future"].cancel()

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
                transport = self._request.transport
                if transport is not None:
                    transport.abort()
                return True
            broken = self._malformed(fault)
            logger.debug(f"{self._standin}: connection {self._conn.id}: injected {broken[:40]!r}")
            with contextlib.suppress(ConnectionError, RuntimeError):
                await self._ws.send_str(broken)
        return False

    def _malformed(self, fault: Fault) -> str:
        if fault.malformed == "invalid_json":
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
