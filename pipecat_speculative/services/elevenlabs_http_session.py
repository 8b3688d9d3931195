"""One pooled, warmed aiohttp session for Pipecat's ``ElevenLabsHttpTTSService``.

``ElevenLabsHttpTTSService`` takes the ``aiohttp_session`` it posts through; a bot that makes one
per service (or per request) pays TCP + TLS on the first sentence of the first turn, and again
whenever aiohttp's default 15 s client keep-alive has closed the idle connection between turns.
:class:`ElevenLabsHttpSession` is the one session to share: its connections stay pooled for
``keepalive_timeout_secs``, :meth:`~ElevenLabsHttpSession.warmup` opens ``connections`` of them
ahead of the first turn with ``GET /v1/models`` (costs no characters), and
:meth:`~ElevenLabsHttpSession.ensure_warm` re-warms after an idle period, which a bot calls
when a response (or a speculation) starts.

It is a helper, not a Pipecat processor: it owns no background task. The WebSocket service
(:class:`~pipecat_speculative.services.warm_elevenlabs_tts_service.WarmElevenLabsTTSService`) is the
lower-latency path; this is for bots that use HTTP.

A synthesis request abandoned mid-stream (an interruption) closes its connection, as with any
HTTP/1.1 client; keeping ``connections`` at 2 or more leaves the next request a warm one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from types import SimpleNamespace, TracebackType
from typing import Any, Self

import aiohttp
from loguru import logger

from pipecat_speculative.services.warmup_report import (
    WarmupKind,
    WarmupListener,
    WarmupRecorder,
    WarmupReport,
)

__all__ = ["ElevenLabsHttpSession"]

_SERVICE = "elevenlabs-http"


class ElevenLabsHttpSession:
    """A shared, pooled aiohttp session for ElevenLabs HTTP synthesis, warmed on request.

    Use one per process (or per bot runner) and pass ``.session`` to every
    ``ElevenLabsHttpTTSService(aiohttp_session=...)``::

        async with ElevenLabsHttpSession(api_key=key) as http:
            await http.warmup()
            tts = ElevenLabsHttpTTSService(api_key=key, aiohttp_session=http.session, ...)

    Args:
        api_key: ElevenLabs API key (sent as ``xi-api-key`` on warm-up requests).
        base_url: API base URL, as given to the service.
        warm: False makes :meth:`warmup` and :meth:`ensure_warm` no-ops (the session is still
            pooled and shared).
        connections: Connections opened by a warmup. 2 leaves a warm one after an interrupted
            synthesis closed the other.
        warmup_timeout_secs: Budget of one warmup; a dead endpoint fails soft within it.
        keepalive_timeout_secs: How long aiohttp keeps an idle connection (its default, 15 s,
            closes the connection between most turns).
        rewarm_after_idle_secs: :meth:`ensure_warm` re-warms when the session has been idle
            this long (set it below the server's keep-alive).
        warmup_listener: ``listener(service, secs, ok)``, e.g. ``observer.record_warmup``.
        limit: Maximum simultaneous connections of the pool.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str = "https://api.elevenlabs.io",
        warm: bool = True,
        connections: int = 2,
        warmup_timeout_secs: float = 5.0,
        keepalive_timeout_secs: float = 60.0,
        rewarm_after_idle_secs: float = 30.0,
        warmup_listener: WarmupListener | None = None,
        limit: int = 100,
    ) -> None:
        if connections < 1:
            raise ValueError(f"connections must be >= 1, got {connections}")
        if warmup_timeout_secs <= 0 or keepalive_timeout_secs <= 0 or rewarm_after_idle_secs <= 0:
            raise ValueError("timeouts must be > 0")
        self._api_key = api_key
        self._base_url = base_url.rstrip("/")
        self.warm = warm
        self._connections = connections
        self._warmup_timeout_secs = warmup_timeout_secs
        self._keepalive_timeout_secs = keepalive_timeout_secs
        self._rewarm_after_idle_secs = rewarm_after_idle_secs
        self._limit = limit
        self._warmups = WarmupRecorder(listener=warmup_listener)
        self._session: aiohttp.ClientSession | None = None
        self._last_activity: float | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"ElevenLabsHttpSession({self._base_url})"

    async def __aenter__(self) -> Self:
        _ = self.session
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session (created on first use, inside the event loop)."""
        if self._session is None or self._session.closed:
            trace = aiohttp.TraceConfig()
            trace.on_request_end.append(self._on_request_done)
            trace.on_request_exception.append(self._on_request_done)
            connector = aiohttp.TCPConnector(
                limit=self._limit, keepalive_timeout=self._keepalive_timeout_secs
            )
            self._session = aiohttp.ClientSession(connector=connector, trace_configs=[trace])
        return self._session

    @property
    def warmup_reports(self) -> list[WarmupReport]:
        """Every warmup so far, oldest first."""
        return self._warmups.reports

    async def warmup(self) -> WarmupReport | None:
        """Open ``connections`` pooled connections now; bounded by ``warmup_timeout_secs``.

        Returns:
            The report, or None when ``warm=False``.
        """
        if not self.warm:
            return None
        async with self._lock:
            return await self._warmup(
                WarmupKind.REWARM
                if any(r.ok for r in self._warmups.reports)
                else WarmupKind.INITIAL
            )

    async def ensure_warm(self) -> WarmupReport | None:
        """Re-warm if the session has been idle for ``rewarm_after_idle_secs`` (or never warmed).

        Cheap when warm: nothing is sent. Call it when a response or a speculation starts.
        """
        if not self.warm:
            return None
        idle = self._last_activity is None or (
            time.monotonic() - self._last_activity >= self._rewarm_after_idle_secs
        )
        if not idle:
            return None
        return await self.warmup()

    async def close(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def _warmup(self, kind: WarmupKind) -> WarmupReport:
        session = self.session
        url = f"{self._base_url}/v1/models"
        headers = {"xi-api-key": self._api_key}

        refusals: list[int] = []

        async def one() -> None:
            async with session.get(url, headers=headers) as response:
                await response.read()
                if response.status >= 400:
                    # Answered, so the connection is open and pooled; only the key is suspect.
                    refusals.append(response.status)

        start = time.monotonic()
        error: str | None = None
        opened = 0
        try:
            async with asyncio.timeout(self._warmup_timeout_secs):
                outcomes = await asyncio.gather(
                    *(one() for _ in range(self._connections)), return_exceptions=True
                )
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            opened = len(outcomes) - len(failures)
            if failures:
                error = f"{type(failures[0]).__name__}: {failures[0]}"
        except TimeoutError:
            error = f"no answer within {self._warmup_timeout_secs:g} s"
        report = WarmupReport(
            service=_SERVICE,
            kind=kind,
            secs=time.monotonic() - start,
            ok=error is None,
            connections=opened,
            error=error,
        )
        if refused := next((s for s in refusals if s in (401, 403)), None):
            # Connections are pooled, but every synthesis with this key would be refused too.
            report = dataclasses.replace(
                report, ok=False, error=f"API key refused (HTTP {refused})"
            )
            logger.error(
                f"{self}: ElevenLabs warmup failed: API key refused (HTTP {refused}); every "
                "synthesis will fail until the key is fixed"
            )
        elif refusals:
            logger.warning(
                f"{self}: warmup request answered HTTP {refusals[0]}; the connection is warm, "
                "but check the API key"
            )
        if report.ok:
            logger.info(
                f"{self}: ElevenLabs warmup complete in {report.ms} ms "
                f"({opened} HTTP connection(s), {kind})"
            )
        elif not refused:
            logger.warning(
                f"{self}: ElevenLabs HTTP warmup failed after {report.ms} ms ({error}); "
                "synthesis opens its own connections"
            )
        return await self._warmups.record(report)

    async def _on_request_done(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: Any
    ) -> None:
        self._last_activity = time.monotonic()
