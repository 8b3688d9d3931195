"""Keep an OpenAI (or OpenAI-compatible) LLM service's connections warm, before and between turns.

Three connection costs land on a turn with a stock ``BaseOpenAILLMService`` (measured in the
reference deployment and against the stand-ins): the first inference of a session opens the
connection (~760 ms against OpenAI); every withdrawn speculation closes its connection, so the
inference after it opens a new one; and an idle connection the server closed is found dead by
the next inference, which opens a new one. :class:`WarmOpenAILLMMixin` takes all three off the
critical path:

- **Before the first turn**: :meth:`~WarmOpenAILLMMixin.warmup` opens ``spare_connections + 1``
  connections with ``GET /v1/models`` (no tokens; a 1-token completion instead on the first one
  when ``warmup_completion=True``), bounded by ``warmup_timeout_secs``. It runs as a background
  task started with the pipeline: StartFrame is not held for it, so nothing waits on it, audio
  input least of all. An inference that arrives while the warmup is still connecting joins the
  connection being opened rather than opening another (see
  :class:`~pipecat_speculative.services.warm_connection_transport.WarmConnectionTransport`).
- **After a withdrawal**: while an inference runs, ``spare_connections`` more connections are kept
  open. A withdrawn inference's connection dies; the next inference takes a spare, and a
  replacement is opened in the background.
- **After idle**: idle connections are probed every ``health_check_secs`` (a local socket check,
  no traffic); one the server closed is dropped and replaced at once, and connections idle for
  ``keepalive_ping_secs`` are sent a ``GET /v1/models`` so a server keep-alive longer than that
  never expires them.

Every warmup that a turn would otherwise have paid for (the first one, and a re-warm after the
server closed idle connections) is logged as ``OpenAI connection warmed in N ms``, kept in
``warmup_reports``, given to ``warmup_listener`` and emitted as ``on_warmup``. A failed warmup is
a warning and retried with backoff; inferences still work, each opening its own connection. A
warmup answered 401 or 403 is failed too (``ok=False``, an error-level log naming the status),
although its connections are open: the key is refused, and saying so when the session starts
beats the user's first turn failing silently. The pipeline still starts; the first inference
then fails with Pipecat's own error.

``warm=False`` leaves the service exactly stock (the bench's ``--no-warm``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import urllib.parse
import urllib.request
from functools import partial
from typing import Any

from loguru import logger
from openai import APIStatusError
from pipecat.frames.frames import CancelFrame, EndFrame, StartFrame

from pipecat_speculative.pipecat_compat import (
    call_event_handler,
    openai_client,
    register_event_handler,
)
from pipecat_speculative.services.warm_connection_transport import (
    WarmConnectionTransport,
    WarmTransportStats,
)
from pipecat_speculative.services.warmup_report import (
    WarmupKind,
    WarmupListener,
    WarmupRecorder,
    WarmupReport,
)

__all__ = ["WarmOpenAILLMMixin"]

_SERVICE = "openai"
_MAX_RETRY_BACKOFF_SECS = 10.0
_KEY_REFUSED_STATUSES = frozenset({401, 403})
"""Statuses that mean the key itself is refused: a failed warmup, not a warm connection."""


def _environment_proxy(base_url: str) -> str | None:
    """The proxy the environment sets for ``base_url``, as httpx would pick it.

    A client given its own transport stops reading the environment, so the warm transport must
    do what httpx's ``trust_env`` does: the scheme's ``HTTPS_PROXY``/``HTTP_PROXY`` first, then
    ``ALL_PROXY``; none for hosts ``NO_PROXY`` lists. Either case of the names is read (urllib's
    rules, which httpx shares). Loopback hosts are never proxied (the stand-ins, a local
    gateway).
    """
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).is_loopback:
            return None
    if host == "localhost" or urllib.request.proxy_bypass(host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class WarmOpenAILLMMixin:
    """Mixin for a ``BaseOpenAILLMService`` subclass that keeps its connections warm.

    Put it before the service class: ``class MyLLM(WarmOpenAILLMMixin, OpenAILLMService)``; with
    :class:`~pipecat_speculative.services.speculation_aware_llm.SpeculationAwareLLMMixin`, that
    one first. It wraps whatever client the service's ``create_client()`` builds (so Azure and
    other OpenAI-compatible services keep their own client), swapping in a
    :class:`WarmConnectionTransport`.

    Args:
        warm: False leaves the service stock: no transport, no warmup, no background task.
        spare_connections: Connections kept open beyond the one an inference uses. 1 covers a
            withdrawal followed by a new inference; 2 also covers two withdrawals closer
            together than one connection set-up (~0.8 s). Each costs one idle socket.
        warmup_timeout_secs: Budget of one warmup (all its connections in parallel). A dead or
            unreachable endpoint fails soft after at most this long.
        warmup_completion: Warm with a 1-token chat completion on the first connection instead
            of ``GET /v1/models``. Costs a few tokens; some OpenAI-compatible servers need it to
            load the model.
        keepalive_ping_secs: Idle connections unused this long get a ``GET /v1/models`` so they
            outlive a server keep-alive longer than this. None sends no pings (connections the
            server closes are still replaced, see ``health_check_secs``).
        health_check_secs: How often idle connections are probed (a local socket check, no
            traffic) and missing spares replaced.
        warmup_listener: ``listener(service, secs, ok)``, e.g. ``observer.record_warmup``.
        http2: Let connections negotiate HTTP/2 (needs the ``h2`` package): a cancelled stream
            then leaves its connection open. Spares are kept either way.
        **kwargs: Passed to the service.
    """

    def __init__(
        self,
        *args: Any,
        warm: bool = True,
        spare_connections: int = 1,
        warmup_timeout_secs: float = 5.0,
        warmup_completion: bool = False,
        keepalive_ping_secs: float | None = 20.0,
        health_check_secs: float = 1.0,
        warmup_listener: WarmupListener | None = None,
        http2: bool = False,
        **kwargs: Any,
    ):
        if spare_connections < 0:
            raise ValueError(f"spare_connections must be >= 0, got {spare_connections}")
        if warmup_timeout_secs <= 0 or health_check_secs <= 0:
            raise ValueError("warmup_timeout_secs and health_check_secs must be > 0")
        if keepalive_ping_secs is not None and keepalive_ping_secs <= 0:
            raise ValueError("keepalive_ping_secs must be > 0 or None")
        # Read by create_client(), which the service calls from its __init__.
        self._warm = warm
        self._warm_http2 = http2
        self._warm_transport: WarmConnectionTransport | None = None
        super().__init__(*args, **kwargs)
        self._spare_connections = spare_connections
        self._warmup_timeout_secs = warmup_timeout_secs
        self._warmup_completion = warmup_completion
        self._keepalive_ping_secs = keepalive_ping_secs
        self._health_check_secs = health_check_secs
        self._warm_lock = asyncio.Lock()
        self._warmup_attempted = asyncio.Event()
        self._warm_task: asyncio.Task | None = None
        self._warned_refusal = False
        self._warmups = WarmupRecorder(
            listener=warmup_listener, emit=partial(call_event_handler, self)
        )
        register_event_handler(self, "on_warmup", sync=True)

    # -- public ---------------------------------------------------------------------------------

    @property
    def warm(self) -> bool:
        """Whether connection warming is on."""
        return self._warm

    @property
    def warmup_reports(self) -> list[WarmupReport]:
        """Every warmup reported so far, oldest first."""
        return self._warmups.reports

    @property
    def connection_stats(self) -> WarmTransportStats | None:
        """What the warm transport did (None when ``warm=False``)."""
        return self._warm_transport.stats if self._warm_transport else None

    async def warmup(self) -> WarmupReport | None:
        """Open the connections the next inference needs, now; bounded by ``warmup_timeout_secs``.

        Runs by itself when the pipeline starts; the bench may call it before. When the
        connections are already there nothing is sent and the last report is returned.

        Returns:
            The report, or None when ``warm=False``.
        """
        transport = self._warm_transport
        if transport is None:
            return None
        async with self._warm_lock:
            await transport.drop_dead_lanes()
            deficit = transport.spare_deficit(self._spare_connections)
            if deficit == 0 and self._warmups.last is not None:
                return self._warmups.last
            succeeded = any(r.ok for r in self._warmups.reports)
            kind = WarmupKind.REWARM if succeeded else WarmupKind.INITIAL
            start = self._warmups.clock()
            opened, error = await self._open_connections(
                max(deficit, 1), completion_first=self._warmup_completion
            )
            report = WarmupReport(
                service=_SERVICE,
                kind=kind,
                secs=self._warmups.clock() - start,
                ok=error is None,
                connections=opened,
                error=error,
            )
            self._log_warmup(report)
            self._warmup_attempted.set()
            return await self._warmups.record(report)

    async def wait_for_warmup(self, timeout_secs: float | None = None) -> WarmupReport | None:
        """Wait until the first warmup attempt finished; returns the last report.

        Args:
            timeout_secs: Give up waiting after this long (None waits as long as it takes, which
                is bounded by ``warmup_timeout_secs`` once the pipeline started).
        """
        if self._warm_transport is None:
            return None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_secs):
                await self._warmup_attempted.wait()
        return self._warmups.last

    # -- service hooks --------------------------------------------------------------------------

    def create_client(self, *args: Any, **kwargs: Any) -> Any:
        """Build the service's client, then give it a warm transport (unless ``warm=False``)."""
        client = super().create_client(*args, **kwargs)  # type: ignore[misc]
        if not self._warm:
            return client
        from openai import DefaultAsyncHttpxClient

        self._warm_transport = WarmConnectionTransport(
            http2=self._warm_http2, proxy=_environment_proxy(str(client.base_url))
        )
        return client.with_options(
            http_client=DefaultAsyncHttpxClient(transport=self._warm_transport)
        )

    async def start(self, frame: StartFrame):
        """Start the service, then warm its connections in the background."""
        await super().start(frame)  # type: ignore[misc]
        if self._warm_transport is not None and self._warm_task is None:
            self._warm_task = self.create_task(  # type: ignore[attr-defined]
                self._keep_connections_warm(), "warm_connections"
            )

    async def stop(self, frame: EndFrame):
        """Stop the service and its connection upkeep."""
        await super().stop(frame)  # type: ignore[misc]
        await self._stop_warm_task()

    async def cancel(self, frame: CancelFrame):
        """Cancel the service and its connection upkeep."""
        await super().cancel(frame)  # type: ignore[misc]
        await self._stop_warm_task()

    async def cleanup(self):
        """Release the service, the upkeep task and the idle connections."""
        await super().cleanup()  # type: ignore[misc]
        await self._stop_warm_task()
        if self._warm_transport is not None:
            await self._warm_transport.close_idle()

    # -- upkeep ---------------------------------------------------------------------------------

    async def _stop_warm_task(self) -> None:
        task, self._warm_task = self._warm_task, None
        if task is not None:
            await self.cancel_task(task)  # type: ignore[attr-defined]

    async def _keep_connections_warm(self) -> None:
        """Warm up, then keep spares and replace dead connections until cancelled."""
        transport = self._warm_transport
        assert transport is not None
        try:
            report = await self.warmup()
            failures = 0 if report is None or report.ok else 1
        except Exception as e:  # upkeep must never take the service down
            logger.warning(f"{self}: OpenAI warmup failed: {e}")
            failures = 1
        retry_at = self._retry_at(failures)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._health_check_secs):
                    await transport.changed.wait()
            transport.changed.clear()
            if self._warmups.clock() < retry_at:
                continue
            try:
                ok = await self._tend_connections()
            except Exception as e:
                logger.warning(f"{self}: connection upkeep failed: {e}")
                ok = False
            failures = 0 if ok else failures + 1
            retry_at = self._retry_at(failures)

    def _retry_at(self, failures: int) -> float:
        if failures == 0:
            return 0.0
        backoff = min(_MAX_RETRY_BACKOFF_SECS, self._health_check_secs * 2 ** (failures - 1))
        return self._warmups.clock() + backoff

    async def _tend_connections(self) -> bool:
        """Replace closed connections, top up spares, ping old idle ones; False on failure."""
        transport = self._warm_transport
        assert transport is not None
        async with self._warm_lock:
            expired = await transport.drop_dead_lanes()
            deficit = transport.spare_deficit(self._spare_connections)
            if deficit:
                start = self._warmups.clock()
                opened, error = await self._open_connections(deficit)
                secs = self._warmups.clock() - start
                if expired:
                    report = WarmupReport(
                        service=_SERVICE,
                        kind=WarmupKind.REWARM,
                        secs=secs,
                        ok=error is None,
                        connections=opened,
                        error=error,
                    )
                    self._log_warmup(report, f"{expired} idle connection(s) closed by the server")
                    await self._warmups.record(report)
                elif error is None:
                    logger.debug(
                        f"{self}: opened {opened} spare connection(s) in {round(secs * 1000)} ms "
                        f"({transport})"
                    )
                else:
                    logger.warning(f"{self}: could not open a spare connection: {error}")
                if error is not None:
                    return False
            if self._keepalive_ping_secs is not None:
                await self._ping_idle(transport.idle_lanes(self._keepalive_ping_secs))
        return True

    async def _ping_idle(self, lanes: list[object]) -> None:
        """Send a token-free request on each idle lane so the server keeps it open."""
        client = self._warm_client()
        for lane in lanes:
            try:
                with WarmConnectionTransport.on_lane(lane):
                    async with asyncio.timeout(self._warmup_timeout_secs):
                        await client.models.list()
            except Exception as e:  # the lane is dropped when its connection turns out dead
                logger.debug(f"{self}: keep-alive ping failed: {e}")

    def _warm_client(self) -> Any:
        return openai_client(self).with_options(max_retries=0, timeout=self._warmup_timeout_secs)

    async def _open_connections(
        self, count: int, *, completion_first: bool = False
    ) -> tuple[int, str | None]:
        """Open ``count`` new connections in parallel; returns (opened, first error or None)."""
        client = self._warm_client()
        refusals: list[int] = []

        async def open_one(i: int) -> None:
            with WarmConnectionTransport.opening_new_connection():
                try:
                    if completion_first and i == 0:
                        await client.chat.completions.create(
                            model=self.settings.model,  # type: ignore[attr-defined]
                            messages=[{"role": "user", "content": "Hi"}],
                            max_completion_tokens=1,
                        )
                    else:
                        await client.models.list()
                except APIStatusError as e:
                    # An answer, even a refusal (a key restricted from listing models), means
                    # the connection is open and reusable: that is all a warmup is for.
                    refusals.append(e.status_code)

        try:
            async with asyncio.timeout(self._warmup_timeout_secs):
                outcomes = await asyncio.gather(
                    *(open_one(i) for i in range(count)), return_exceptions=True
                )
        except TimeoutError:
            return 0, f"no answer within {self._warmup_timeout_secs:g} s"
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        opened = count - len(errors)
        if refused := next((s for s in refusals if s in _KEY_REFUSED_STATUSES), None):
            # The connections are open, but every inference with this key will be refused
            # too: a failed warmup, so the start of the session says so, not the first turn.
            return opened, f"API key refused (HTTP {refused})"
        if refusals and not self._warned_refusal:
            self._warned_refusal = True
            logger.warning(
                f"{self}: warmup request answered HTTP {refusals[0]}; the connection is warm, "
                "but check the API key's permissions"
            )
        if errors:
            error = errors[0]
            return opened, f"{type(error).__name__}: {error}"
        return opened, None

    def _log_warmup(self, report: WarmupReport, reason: str | None = None) -> None:
        if report.ok:
            what = f"{report.connections} connection(s)"
            if reason:
                what += f", re-warm: {reason}"
            logger.info(f"{self}: OpenAI connection warmed in {report.ms} ms ({what})")
        elif report.error is not None and report.error.startswith("API key refused"):
            logger.error(
                f"{self}: OpenAI warmup failed: {report.error}. Every inference will fail until "
                "the key is fixed (a restricted key without model-list permission also gets "
                "this: use warmup_completion=True)"
            )
        else:
            logger.warning(
                f"{self}: OpenAI warmup failed after {report.ms} ms ({report.error}); "
                "inferences open their own connections until it succeeds"
            )
