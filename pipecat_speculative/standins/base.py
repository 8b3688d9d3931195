"""Shared machinery of the loopback stand-in servers.

:class:`StandinServer` runs an ``aiohttp.web`` application on 127.0.0.1 (port 0 by default, the
chosen port is reported) as an async context manager::

    async with OpenAIStandin(profile=LatencyProfile.instant()) as s:
        client = AsyncOpenAI(api_key="test", base_url=f"{s.base_url}/v1")

What every stand-in gets from here:

- **Connection accounting** (:class:`ConnectionStats`, ``server.stats``): TCP connections
  accepted and open, requests per path and per route, WebSockets opened and open, and the
  connection penalties charged. A test can prove that a client reused its keep-alive connection.
- **The new-connection penalty**: the first request on a new TCP connection (for a WebSocket, its
  handshake) waits ``profile.new_connection_penalty_secs[service]`` before it is handled; later
  requests on the same connection do not. This stands for TCP + TLS setup and is what makes
  pre-warmed connections measurably faster, as in the reference deployment (+760 ms on OpenAI).
- **A request log** (:class:`RequestRecord`, ``server.requests``), bounded.
- **Fault injection** (``server.faults``, see :mod:`.faults`); ``HTTP_ERROR`` and (for plain HTTP
  requests) ``SLOW_FIRST_BYTE`` are applied here, the streaming kinds by each server.
- **Auth**: each server names its header; a request without it gets the service's 401.
- A server-side keep-alive timeout (``keepalive_timeout_secs``) after which idle connections are
  closed, so re-warm logic can be tested.
"""

from __future__ import annotations

import asyncio
import ipaddress
import itertools
import json
import time
from abc import ABC, abstractmethod
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

from aiohttp import WSCloseCode, web
from loguru import logger

from pipecat_speculative.standins.faults import Fault, FaultKind, FaultPlan
from pipecat_speculative.standins.profile import LatencyProfile

__all__ = [
    "REQUEST_LOG_SIZE",
    "ConnectionInfo",
    "ConnectionStats",
    "RequestRecord",
    "StandinServer",
]

REQUEST_LOG_SIZE = 2000
"""Most recent requests kept in ``server.requests`` (bounded so long bench runs stay small)."""

_RECORD_KEY = web.RequestKey("standin_record", object)
_ids = itertools.count(1)


@dataclass
class ConnectionInfo:
    """One accepted TCP connection.

    Parameters:
        id: Sequential id within the server.
        opened_at: ``time.monotonic()`` when it was accepted.
        peer: The client address.
        requests: Requests received on it.
        penalty_secs: The new-connection penalty charged to its first request (None until then).
        closed_at: ``time.monotonic()`` when it closed, None while open.
    """

    id: int
    opened_at: float
    peer: Any = None
    requests: int = 0
    penalty_secs: float | None = None
    closed_at: float | None = None

    @property
    def is_open(self) -> bool:
        """Whether the connection is still open."""
        return self.closed_at is None


@dataclass
class RequestRecord:
    """One request as the stand-in saw it.

    Parameters:
        method: HTTP method.
        path: Request path (``/v1/chat/completions``).
        route: The route's pattern (``/v1/text-to-speech/{voice}/stream``).
        connection_id: :attr:`ConnectionInfo.id` of the connection it came on.
        new_connection: Whether it was the first request on its connection.
        started_at: ``time.monotonic()`` when it arrived.
        penalty_secs: New-connection penalty it waited (0 on a reused connection).
        websocket: Whether it was a WebSocket handshake.
        status: Response status (None while in progress, or if the connection was aborted).
        fault: The fault kind that fired on it, if any.
        info: Server-specific details (tokens streamed, client disconnected, characters...).
    """

    method: str
    path: str
    route: str
    connection_id: int
    new_connection: bool
    started_at: float
    penalty_secs: float = 0.0
    websocket: bool = False
    status: int | None = None
    fault: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class ConnectionStats:
    """Counters of one stand-in, for tests and the bench.

    Parameters:
        connections_accepted: TCP connections accepted since start (or :meth:`reset`).
        requests_total: Requests received (WebSocket handshakes included).
        requests_by_path: Requests per actual path.
        requests_by_route: Requests per route pattern.
        websockets_opened: WebSocket handshakes accepted.
        open_websockets: WebSockets currently open.
        penalties_applied: Requests that paid the new-connection penalty (> 0 only).
        penalty_secs_total: Sum of the penalties paid.
    """

    connections_accepted: int = 0
    requests_total: int = 0
    requests_by_path: Counter[str] = field(default_factory=Counter)
    requests_by_route: Counter[str] = field(default_factory=Counter)
    websockets_opened: int = 0
    open_websockets: int = 0
    penalties_applied: int = 0
    penalty_secs_total: float = 0.0

    def reset(self) -> None:
        """Zero the counters (``open_websockets`` keeps counting what is really open)."""
        self.connections_accepted = 0
        self.requests_total = 0
        self.requests_by_path = Counter()
        self.requests_by_route = Counter()
        self.websockets_opened = 0
        self.penalties_applied = 0
        self.penalty_secs_total = 0.0


class StandinServer(ABC):
    """Base of the loopback stand-ins: lifecycle, connection accounting, penalty, faults, auth.

    Subclasses set :attr:`service` (the key into ``profile.new_connection_penalty_secs``), add
    their routes in :meth:`_setup_routes`, say how they authenticate in :meth:`_authorized` and
    what their errors look like in :meth:`_error_response`.

    Args:
        profile: Latency profile; the reference profile when None.
        api_key: When set, requests must carry exactly this key; otherwise any non-empty key
            is accepted (like a real service, a missing key is always a 401).
        host: Loopback address to bind. Anything that is not loopback is refused: the
            stand-ins must never be reachable from outside the machine.
        port: Port to bind; 0 picks a free one (see :attr:`port`).
        keepalive_timeout_secs: Idle keep-alive connections are closed by the server after this
            long (tests of re-warming after idle shorten it).
        shutdown_timeout_secs: How long :meth:`stop` lets in-flight requests finish before
            cancelling them; short, so a test's teardown never waits for a slow profile.
        client_max_size: Largest request body accepted, in bytes.
    """

    service: ClassVar[str] = ""

    def __init__(
        self,
        *,
        profile: LatencyProfile | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        keepalive_timeout_secs: float = 90.0,
        shutdown_timeout_secs: float = 1.0,
        client_max_size: int = 1024**2,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"stand-ins bind to loopback only, got {host!r}")
        if keepalive_timeout_secs <= 0:
            raise ValueError("keepalive_timeout_secs must be > 0")
        self.profile = profile or LatencyProfile()
        self.api_key = api_key
        self.host = host
        self._requested_port = port
        self.keepalive_timeout_secs = keepalive_timeout_secs
        self.shutdown_timeout_secs = shutdown_timeout_secs
        self.client_max_size = client_max_size
        self.stats = ConnectionStats()
        self.requests: deque[RequestRecord] = deque(maxlen=REQUEST_LOG_SIZE)
        self.connections: dict[int, ConnectionInfo] = {}
        self.faults = FaultPlan()
        self._by_handler: dict[object, ConnectionInfo] = {}
        self._conn_ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._websockets: set[web.WebSocketResponse] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._name = f"{type(self).__name__}#{next(_ids)}"

    def __str__(self) -> str:
        return self._name

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """Whether the server is listening."""
        return self._runner is not None

    @property
    def port(self) -> int:
        """The port the server listens on (raises before :meth:`start`)."""
        if self._port is None:
            raise RuntimeError(f"{self} is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://{self._url_host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT`` (no trailing slash)."""
        return f"ws://{self._url_host}:{self.port}"

    @property
    def _url_host(self) -> str:
        return f"[{self.host}]" if ":" in self.host else self.host

    async def start(self) -> Self:
        """Bind and start serving; returns self. Idempotent."""
        if self._runner is not None:
            return self
        app = web.Application(middlewares=[self._middleware], client_max_size=self.client_max_size)
        self._setup_routes(app)
        runner = web.AppRunner(
            app,
            access_log=None,
            keepalive_timeout=self.keepalive_timeout_secs,
            shutdown_timeout=self.shutdown_timeout_secs,
        )
        await runner.setup()
        self._hook_connections(runner)
        site = web.TCPSite(runner, self.host, self._requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = runner.addresses[0][1]
        await self._on_started()
        logger.debug(f"{self}: listening on {self.base_url} ({self._describe()})")
        return self

    async def stop(self) -> None:
        """Close WebSockets, cancel background work and stop serving. Idempotent."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        for ws in list(self._websockets):
            try:
                await asyncio.wait_for(ws.close(code=WSCloseCode.GOING_AWAY), timeout=1.0)
            except Exception as e:  # closing a socket the peer already dropped
                logger.trace(f"{self}: closing a websocket on stop: {e}")
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await runner.cleanup()
        await self._on_stopped()
        logger.debug(
            f"{self}: stopped ({self.stats.connections_accepted} connections, "
            f"{self.stats.requests_total} requests)"
        )

    # -- hooks for subclasses -----------------------------------------------------------------

    @abstractmethod
    def _setup_routes(self, app: web.Application) -> None:
        """Add the service's routes."""

    @abstractmethod
    def _authorized(self, request: web.Request) -> bool:
        """Whether the request carries an acceptable key."""

    @abstractmethod
    def _error_response(
        self, status: int, message: str, *, retry_after_secs: float | None = None
    ) -> web.Response:
        """The service's JSON error response."""

    def _describe(self) -> str:
        """A short description for the start log line."""
        return f"service={self.service}"

    async def _on_started(self) -> None:  # noqa: B027 - optional hook
        """Called once listening."""

    async def _on_stopped(self) -> None:  # noqa: B027 - optional hook
        """Called after the server stopped."""

    # -- helpers for subclasses ---------------------------------------------------------------

    def _key_ok(self, key: str | None) -> bool:
        if not key:
            return False
        return self.api_key is None or key == self.api_key

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in the background; it is cancelled by :meth:`stop`."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _track_websocket(self, ws: web.WebSocketResponse) -> None:
        self._websockets.add(ws)
        self.stats.websockets_opened += 1
        self.stats.open_websockets += 1

    def _untrack_websocket(self, ws: web.WebSocketResponse) -> None:
        if ws in self._websockets:
            self._websockets.discard(ws)
            self.stats.open_websockets -= 1

    @staticmethod
    def record_of(request: web.Request) -> RequestRecord:
        """The :class:`RequestRecord` of a request being handled."""
        return request[_RECORD_KEY]  # type: ignore[return-value]

    def _abort(self, request: web.Request) -> None:
        """Abort the request's TCP connection without a goodbye (a network cut)."""
        transport = request.transport
        if transport is not None:
            transport.abort()
        info = self._by_handler.get(request.protocol)
        if info is not None and info.closed_at is None:
            info.closed_at = time.monotonic()

    def _take_fault(self, kind: FaultKind, request: web.Request) -> Fault | None:
        fault = self.faults.take(kind, request.path)
        if fault is not None:
            record = self.record_of(request)
            record.fault = kind.value
            logger.debug(f"{self}: injecting {kind.value} on {request.path} ({fault})")
        return fault

    @staticmethod
    def _malformed_json(fault: Fault, missing: dict[str, Any]) -> str:
        """The broken message for a ``MALFORMED`` fault.

        Args:
            fault: The fault.
            missing: A message lacking the fields the client needs (``"missing_fields"``).
        """
        if fault.malformed != "missing_fields":
            return '{"truncated": tru'
        return json.dumps(missing)

    # -- internals ----------------------------------------------------------------------------

    def _hook_connections(self, runner: web.AppRunner) -> None:
        server = runner.server
        assert server is not None
        made: Callable[[Any, Any], None] = server.connection_made
        lost: Callable[[Any, BaseException | None], None] = server.connection_lost

        def connection_made(handler: Any, transport: Any) -> None:
            info = ConnectionInfo(
                id=next(self._conn_ids),
                opened_at=time.monotonic(),
                peer=transport.get_extra_info("peername"),
            )
            self.connections[info.id] = info
            self._by_handler[handler] = info
            self.stats.connections_accepted += 1
            logger.trace(f"{self}: connection {info.id} accepted from {info.peer}")
            made(handler, transport)

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            info = self._by_handler.pop(handler, None)
            if info is not None and info.closed_at is None:
                info.closed_at = time.monotonic()
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    @property
    def open_connections(self) -> int:
        """TCP connections currently open."""
        return sum(1 for c in self.connections.values() if c.is_open)

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        info = self._by_handler.get(request.protocol)
        if info is None:  # connection_made always runs first; be safe anyway
            info = ConnectionInfo(id=next(self._conn_ids), opened_at=time.monotonic())
            self.connections[info.id] = info
            self._by_handler[request.protocol] = info
        info.requests += 1
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        record = RequestRecord(
            method=request.method,
            path=request.path,
            route=route,
            connection_id=info.id,
            new_connection=info.penalty_secs is None,
            started_at=time.monotonic(),
            websocket=is_ws,
        )
        request[_RECORD_KEY] = record
        self.requests.append(record)
        self.stats.requests_total += 1
        self.stats.requests_by_path[request.path] += 1
        self.stats.requests_by_route[route] += 1

        if info.penalty_secs is None:
            # Stands for TCP + TLS setup: paid once per connection, before anything else.
            penalty = self.profile.connection_penalty(self.service)
            info.penalty_secs = penalty
            record.penalty_secs = penalty
            if penalty > 0:
                self.stats.penalties_applied += 1
                self.stats.penalty_secs_total += penalty
                logger.trace(f"{self}: new connection {info.id}, penalty {penalty:.3f}s")
                await asyncio.sleep(penalty)

        response: web.StreamResponse
        if not self._authorized(request):
            response = self._error_response(401, "Invalid or missing API key.")
        elif fault := self._take_fault(FaultKind.HTTP_ERROR, request):
            response = self._error_response(
                fault.status,
                fault.message or _DEFAULT_ERROR_MESSAGES.get(fault.status, "Injected error."),
                retry_after_secs=fault.retry_after_secs,
            )
        else:
            if not is_ws and (fault := self._take_fault(FaultKind.SLOW_FIRST_BYTE, request)):
                await asyncio.sleep(fault.delay_secs)
            response = await handler(request)
        record.status = response.status
        return response


_DEFAULT_ERROR_MESSAGES = {
    400: "Bad request.",
    401: "Invalid or missing API key.",
    403: "Forbidden.",
    404: "Not found.",
    429: "Rate limit reached. Please try again later.",
    500: "The server had an error while processing your request.",
    502: "Bad gateway.",
    503: "The service is temporarily unavailable.",
}
