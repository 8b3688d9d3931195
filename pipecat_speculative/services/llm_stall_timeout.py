"""Bound how long an OpenAI-compatible completion may go silent, before or during its stream.

Stock Pipecat bounds an inference only by the openai client's own timeout: 600 s of read timeout
by default, per chunk. A server that accepts the request and then sends nothing (an overloaded
gateway, a hung upstream, a network path that silently drops packets) leaves the bot mute for up
to ten minutes, with the turn open and nothing logged. ``retry_on_timeout`` covers only the wait
for the response headers, and re-issues the request once with no bound at all.

:class:`LLMStallTimeoutMixin` gives every completion a budget of ``stall_timeout_secs`` of
silence: from the request to its first chunk (a slow first byte), and between any two chunks (a
stall mid-stream). When it runs out, the request is abandoned (its connection closed) and an httpx
``ReadTimeout`` is raised, which Pipecat's OpenAI services already report the way they report
their own timeouts: ``on_completion_timeout`` and an ``ErrorFrame`` upstream
("LLM completion timeout"), then ``LLMFullResponseEndFrame`` so the response is closed. The text
streamed before a stall stays what it was; nothing is invented or repeated.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger

from pipecat_speculative.services.warm_connection_transport import http_client_family

__all__ = ["LLMStallTimeoutMixin"]

_http: Any = http_client_family()


class LLMStallTimeoutMixin:
    """Mixin for a ``BaseOpenAILLMService`` subclass; put it before the service class.

    Args:
        stall_timeout_secs: Longest silence allowed, before the first chunk and between chunks.
            10 s is far beyond a healthy model's time to first token or gap between tokens and
            still ends a hung stream in a time a caller would wait. Reasoning models that think
            long before their first token need more; None turns the bound off (stock).
        **kwargs: Passed to the service.
    """

    def __init__(self, *args: Any, stall_timeout_secs: float | None = 10.0, **kwargs: Any):
        if stall_timeout_secs is not None and stall_timeout_secs <= 0:
            raise ValueError(f"stall_timeout_secs must be > 0 or None, got {stall_timeout_secs}")
        super().__init__(*args, **kwargs)
        self._stall_timeout_secs = stall_timeout_secs
        self.stalled_completions = 0

    @property
    def stall_timeout_secs(self) -> float | None:
        """The silence budget of a completion (None: unbounded)."""
        return self._stall_timeout_secs

    async def get_chat_completions(self, context: Any) -> Any:
        """Open the completion stream within the budget, and bound each later chunk by it too."""
        secs = self._stall_timeout_secs
        if secs is None:
            return await super().get_chat_completions(context)  # type: ignore[misc]
        try:
            async with asyncio.timeout(secs):
                stream = await super().get_chat_completions(context)  # type: ignore[misc]
        except TimeoutError:
            raise self._stalled(0) from None
        return _StallBoundedStream(stream, secs, self._stalled)

    def _stalled(self, chunks: int) -> Exception:
        self.stalled_completions += 1
        where = "before its first chunk" if chunks == 0 else f"after {chunks} chunk(s)"
        message = (
            f"the completion sent nothing for {self._stall_timeout_secs:g} s {where} "
            "(stall_timeout_secs); abandoning it"
        )
        logger.warning(f"{self}: {message}")
        return _http.ReadTimeout(message)


class _StallBoundedStream:
    """The completion stream, iterated with a bound on the wait for each chunk."""

    def __init__(self, stream: Any, secs: float, on_stall: Any):
        self._stream = stream
        self._secs = secs
        self._on_stall = on_stall

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __aiter__(self) -> _StallBoundedIterator:
        return _StallBoundedIterator(self._stream.__aiter__(), self._secs, self._on_stall)

    async def close(self) -> None:
        await self._stream.close()


class _StallBoundedIterator:
    def __init__(self, chunks: Any, secs: float, on_stall: Any):
        self._chunks = chunks
        self._secs = secs
        self._on_stall = on_stall
        self._received = 0

    def __aiter__(self) -> _StallBoundedIterator:
        return self

    async def __anext__(self) -> Any:
        try:
            async with asyncio.timeout(self._secs):
                chunk = await self._chunks.__anext__()
        except TimeoutError:
            raise self._on_stall(self._received) from None
        self._received += 1
        return chunk

    async def aclose(self) -> None:
        aclose = getattr(self._chunks, "aclose", None)
        if aclose is not None:
            await aclose()
