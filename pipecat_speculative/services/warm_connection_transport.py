"""An HTTP transport for the openai client that keeps a warm connection ready for the next request.

Why it exists: a streamed completion abandoned before its end (a withdrawn speculation) closes
its HTTP/1.1 connection, because the rest of the response is still on the wire. The next
inference then pays TCP + TLS setup again: ~760 ms against OpenAI in the reference deployment,
exactly on the turns where speculation withdraws most (a hesitant speaker). Measured on the
stand-in with the stock client: cancel a stream, and the next request arrives on a new
connection.

Mechanism: **lanes**. Each lane is a one-connection pool of its own; a request goes to

1. an idle lane whose connection is open (warm),
2. else a lane whose connection is being warmed right now (it waits for the rest of that
   handshake instead of starting a second one from zero),
3. else a new lane (cold; counted, so a test or the bench can see it).

The owner (:class:`~pipecat_speculative.services.warm_openai_llm_mixin.WarmOpenAILLMMixin`) opens
lanes in the background with a token-free request (``GET /v1/models``), so that while an
inference runs a spare connection is already open: when that inference is withdrawn and its
connection dies, the next one takes the spare and the owner replaces it off the critical path.

Why lanes and not one shared pool: in a shared pool a warm-up request always lands on an idle
connection if there is one, so it cannot *add* a connection without first occupying the warm
one for a round trip, and an inference starting in that window would open a cold connection.
A lane's warm-up can only ever open its own connection.

Why not HTTP/2 alone: with HTTP/2 a cancelled stream is reset and the connection survives,
which solves this against servers that speak it (``http2=True`` passes through to the lanes;
needs the ``h2`` package). But many OpenAI-compatible servers and proxies, and the stand-ins,
speak only HTTP/1.1, and a connection also dies for other reasons (server keep-alive, network),
so the spare lane is what guarantees a warm connection; HTTP/2 only makes replacements rarer.
The suite exercises HTTP/1.1 only (the stand-ins have no HTTP/2).

The transport belongs to the http client family the installed openai client uses (``httpx`` for
openai < 3, ``httpx2`` from 3 on). It reads the lanes' connection state through httpcore's public
``AsyncConnectionPool.connections`` (reached through the transport's ``_pool`` attribute); if that
is unavailable it falls back to assuming that a response closed before its end closed its
connection, which is what HTTP/1.1 does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from loguru import logger
from openai import DefaultAsyncHttpxClient

__all__ = ["WarmConnectionTransport", "WarmTransportStats", "http_client_family"]


def http_client_family() -> ModuleType:
    """The ``httpx``-like module the installed openai client is built on (httpx or httpx2)."""
    for base in DefaultAsyncHttpxClient.__mro__[1:]:
        if base.__name__ == "AsyncClient":
            return importlib.import_module(base.__module__.partition(".")[0])
    raise RuntimeError("cannot tell which httpx family the openai client uses")


_http: Any = http_client_family()

_NEW_LANE = object()
_ROUTE: ContextVar[object | None] = ContextVar("warm_connection_route", default=None)


@dataclass
class WarmTransportStats:
    """What the transport did, for tests, logs and the bench.

    Parameters:
        requests: Requests made by the client (background warm-ups not included).
        warm_requests: Of those, sent on an idle connection that was already open.
        requests_on_warming: Of those, sent on a connection a warm-up was still opening.
        cold_requests: Of those, that had to open a connection of their own.
        background_requests: Warm-up and keep-alive requests.
        connections_opened: Lanes created (each opens one connection).
        connections_lost: Connections closed by a response abandoned before its end (a
            cancelled stream on HTTP/1.1).
        connections_expired: Idle connections found closed by the server.
    """

    requests: int = 0
    warm_requests: int = 0
    requests_on_warming: int = 0
    cold_requests: int = 0
    background_requests: int = 0
    connections_opened: int = 0
    connections_lost: int = 0
    connections_expired: int = 0


@dataclass(eq=False)
class _Lane:
    id: int
    transport: Any
    last_active: float
    in_flight: int = 0
    background: int = 0
    requests: int = 0

    @property
    def idle(self) -> bool:
        return self.in_flight == 0

    @property
    def only_background(self) -> bool:
        """Idle, or busy only with warm-up work (so a request can join it)."""
        return self.in_flight == self.background


def _connection_alive(lane: _Lane) -> bool | None:
    """Whether the lane's connection is open and usable; None when it cannot be told."""
    pool = getattr(lane.transport, "_pool", None)
    connections = getattr(pool, "connections", None)
    if connections is None:
        return None
    for conn in connections:
        try:
            connected = getattr(conn, "is_connected", None)
            if conn.is_closed() or conn.has_expired():
                continue
            if connected is not None and not connected():
                continue
            return True
        except Exception:  # a connection torn down under us
            continue
    return False


class _LaneStream(_http.AsyncByteStream):
    """A response body that tells its lane when it is closed, and whether it was read to the end."""

    def __init__(self, inner: Any, on_close: Callable[[bool], Awaitable[None]]) -> None:
        self._inner = inner
        self._on_close = on_close
        self._completed = False
        self._closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk
        self._completed = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._inner.aclose()
        finally:
            await self._on_close(self._completed)


class WarmConnectionTransport(_http.AsyncBaseTransport):
    """Routes each request to a warm connection when there is one; see the module docstring.

    Give it to the openai client as ``DefaultAsyncHttpxClient(transport=...)``. Background
    requests are marked by running them inside :meth:`opening_new_connection` or
    :meth:`on_lane`; everything else is a client request.

    Args:
        http2: Let lanes negotiate HTTP/2 (needs ``h2``). A cancelled HTTP/2 stream leaves its
            connection open, so fewer replacements are needed.
        proxy: Proxy URL for the lanes. A client given its own transport no longer reads proxy
            settings from the environment, so the owner passes them here.
        lane_factory: Builds one lane's transport; the default is a one-connection
            ``AsyncHTTPTransport`` with no client-side keep-alive expiry (as Pipecat configures
            its pool), so only the server decides when an idle connection ends.
        clock: Monotonic clock.
    """

    def __init__(
        self,
        *,
        http2: bool = False,
        proxy: str | None = None,
        lane_factory: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if http2:
            try:
                import h2  # noqa: F401
            except ImportError as e:
                raise ImportError("http2=True needs the 'h2' package") from e
        self._http2 = http2
        self._proxy = proxy
        self._lane_factory = lane_factory or self._default_lane
        self._clock = clock
        self._lanes: list[_Lane] = []
        self._lane_ids = itertools.count(1)
        self.stats = WarmTransportStats()
        self.changed = asyncio.Event()
        """Set whenever a lane is taken, released or dropped; the owner waits on it."""

    def __repr__(self) -> str:
        states = ", ".join(
            f"{lane.id}:{'idle' if lane.idle else 'warming' if lane.only_background else 'busy'}"
            for lane in self._lanes
        )
        return f"WarmConnectionTransport([{states}])"

    def _default_lane(self) -> Any:
        limits = _http.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=None)
        return _http.AsyncHTTPTransport(http2=self._http2, limits=limits, proxy=self._proxy)

    # -- routing marks --------------------------------------------------------------------------

    @staticmethod
    @contextlib.contextmanager
    def opening_new_connection() -> Iterator[None]:
        """Requests made inside open a new lane (a background warm-up)."""
        token = _ROUTE.set(_NEW_LANE)
        try:
            yield
        finally:
            _ROUTE.reset(token)

    @staticmethod
    @contextlib.contextmanager
    def on_lane(lane: object) -> Iterator[None]:
        """Requests made inside go to ``lane`` (a background keep-alive ping)."""
        token = _ROUTE.set(lane)
        try:
            yield
        finally:
            _ROUTE.reset(token)

    # -- state --------------------------------------------------------------------------------

    @property
    def lane_count(self) -> int:
        """Lanes (connections, open or opening) held."""
        return len(self._lanes)

    @property
    def ready_count(self) -> int:
        """Lanes a request could take now: idle, or busy only with a warm-up."""
        return sum(1 for lane in self._lanes if lane.only_background)

    @property
    def busy_count(self) -> int:
        """Lanes carrying a client request."""
        return sum(1 for lane in self._lanes if not lane.only_background)

    def spare_deficit(self, spare: int) -> int:
        """How many lanes to open so a request finds a warm one even after the next withdrawal.

        With nothing in flight the target is ``spare + 1`` ready lanes (one for the next
        request, ``spare`` for the one after it if it is withdrawn); while requests run it is
        ``spare``.
        """
        target = spare + (0 if self.busy_count else 1)
        return max(0, target - self.ready_count)

    def idle_lanes(self, min_idle_secs: float = 0.0) -> list[object]:
        """Idle lanes unused for at least ``min_idle_secs`` (for keep-alive pings), oldest first."""
        now = self._clock()
        lanes = [
            lane for lane in self._lanes if lane.idle and now - lane.last_active >= min_idle_secs
        ]
        return sorted(lanes, key=lambda lane: lane.last_active)

    async def drop_dead_lanes(self) -> int:
        """Drop idle lanes whose connection the server closed; returns how many."""
        dead = [lane for lane in self._lanes if lane.idle and _connection_alive(lane) is False]
        for lane in dead:
            logger.debug(f"{self}: connection of lane {lane.id} was closed by the server")
            await self._drop(lane)
        self.stats.connections_expired += len(dead)
        return len(dead)

    # -- httpx transport ----------------------------------------------------------------------

    async def handle_async_request(self, request: Any) -> Any:
        """Send ``request`` on the best lane; the response body releases the lane when closed."""
        route = _ROUTE.get()
        background = route is not None
        if background:
            self.stats.background_requests += 1
            lane = route if isinstance(route, _Lane) and route in self._lanes else self._new_lane()
        else:
            self.stats.requests += 1
            lane = await self._pick_lane()
        lane.in_flight += 1
        lane.requests += 1
        if background:
            lane.background += 1
        self.changed.set()
        try:
            response = await lane.transport.handle_async_request(request)
        except BaseException:
            await self._release(lane, background, completed=False)
            raise

        async def release(completed: bool) -> None:
            await self._release(lane, background, completed)

        response.stream = _LaneStream(response.stream, release)
        return response

    async def aclose(self) -> None:
        """Close every connection."""
        for lane in list(self._lanes):
            await self._drop(lane)

    async def close_idle(self) -> None:
        """Close the idle connections (the transport stays usable)."""
        for lane in [lane for lane in self._lanes if lane.idle]:
            await self._drop(lane)

    # -- internals ----------------------------------------------------------------------------

    def _new_lane(self) -> _Lane:
        lane = _Lane(id=next(self._lane_ids), transport=self._lane_factory(), last_active=0.0)
        lane.last_active = self._clock()
        self._lanes.append(lane)
        self.stats.connections_opened += 1
        return lane

    async def _pick_lane(self) -> _Lane:
        idle = sorted(
            (lane for lane in self._lanes if lane.idle),
            key=lambda lane: lane.last_active,
            reverse=True,
        )
        for lane in idle:
            if _connection_alive(lane) is False:
                self.stats.connections_expired += 1
                await self._drop(lane)
                continue
            self.stats.warm_requests += 1
            return lane
        warming = [lane for lane in self._lanes if lane.only_background]
        if warming:
            self.stats.requests_on_warming += 1
            logger.debug(f"{self}: request joins a connection still being warmed")
            return min(warming, key=lambda lane: lane.in_flight)
        self.stats.cold_requests += 1
        logger.debug(f"{self}: no warm connection ready; the request opens its own")
        return self._new_lane()

    async def _release(self, lane: _Lane, background: bool, completed: bool) -> None:
        lane.in_flight -= 1
        if background:
            lane.background -= 1
        lane.last_active = self._clock()
        if lane.idle and lane in self._lanes:
            alive = _connection_alive(lane)
            if alive is None:
                alive = completed
            if not alive:
                if not completed:
                    self.stats.connections_lost += 1
                    logger.debug(
                        f"{self}: lane {lane.id} lost its connection to an unread response"
                    )
                await self._drop(lane)
        self.changed.set()

    async def _drop(self, lane: _Lane) -> None:
        if lane in self._lanes:
            self._lanes.remove(lane)
        self.changed.set()
        try:
            await lane.transport.aclose()
        except Exception as e:  # closing an already broken connection
            logger.trace(f"{self}: closing lane {lane.id}: {e}")
