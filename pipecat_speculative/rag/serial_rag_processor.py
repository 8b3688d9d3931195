"""RAG the way a Pipecat user writes it today: retrieve after the commit, inside process_frame."""

from __future__ import annotations

import asyncio
import time

from loguru import logger
from pipecat.frames.frames import Frame, LLMContextFrame
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor

from pipecat_speculative.metrics.timing_mark_frame import RAG_DONE, RAG_START, TimingMarkFrame
from pipecat_speculative.rag.base_retriever import BaseRetriever
from pipecat_speculative.rag.passage_injection import inject_passages, query_text
from pipecat_speculative.rag.rag_params import RAGParams

__all__ = ["SerialRAGProcessor"]


class SerialRAGProcessor(FrameProcessor):
    """The baseline: each committed context waits for its own retrieval, in ``process_frame``.

    This is what a Pipecat RAG processor usually looks like (compare the shipped Mem0 memory
    service): the context is awaited on the frame path, retrieval starts only when it arrives,
    nothing is shared between contexts. It is correct for non-speculative pipelines, which is
    where the bench uses it (``stock``, ``eager_flux``), and it is what the speculative
    pipeline's :class:`~pipecat_speculative.rag.parallel_rag_processor.ParallelRAGProcessor` is
    measured against. Injection is the same function, so answers are comparable.

    Speculative contexts are passed on untouched by default (an adopted speculation then
    answers without passages). Retrieving for them here too (``retrieve_speculative=True``)
    reproduces the Pipecat 1.14 hazard this plugin documents: system frames overtake the
    delayed speculation, and a withdrawn one can be spoken next to the real answer. It exists
    to demonstrate that, not to be used.

    Args:
        retriever: Where passages come from.
        params: ``top_k``, ``filter``, ``budget_secs`` (enforced with ``wait_for``), the
            injection settings; the cache and prefetch settings do not apply.
        retrieve_speculative: Also retrieve (serially) for speculative contexts.
        **kwargs: ``FrameProcessor`` arguments.

    Counters (read by the bench): ``retrievals``, ``timeouts``, ``errors``.
    """

    def __init__(
        self,
        *,
        retriever: BaseRetriever,
        params: RAGParams | None = None,
        retrieve_speculative: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._retriever = retriever
        self._params = params or RAGParams()
        self._retrieve_speculative = retrieve_speculative
        self.retrievals = 0
        self.timeouts = 0
        self.errors = 0

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Retrieve for a context, inject, then push it; pass everything else on."""
        await super().process_frame(frame, direction)
        if (
            direction == FrameDirection.DOWNSTREAM
            and isinstance(frame, LLMContextFrame)
            and (not frame.speculation or self._retrieve_speculative)
            and query_text(frame)
        ):
            frame = await self._with_passages(frame)
        await self.push_frame(frame, direction)

    async def _with_passages(self, frame: LLMContextFrame) -> LLMContextFrame:
        query = query_text(frame)
        self.retrievals += 1
        await self.push_frame(TimingMarkFrame(mark=RAG_START, detail=query))
        started = time.monotonic()
        try:
            passages = await asyncio.wait_for(
                self._retriever.retrieve(
                    query, top_k=self._params.top_k, filter=self._params.filter
                ),
                timeout=self._params.budget_secs,
            )
        except TimeoutError:
            self.timeouts += 1
            logger.warning(f"{self}: retrieval for {query!r} timed out; answering without it")
            passages = []
        except Exception as e:
            self.errors += 1
            logger.warning(f"{self}: retrieval for {query!r} failed ({e!r}); answering without it")
            passages = []
        secs = time.monotonic() - started
        await self.push_frame(
            TimingMarkFrame(mark=RAG_DONE, detail=f"hits={len(passages)} in {secs * 1000:.0f} ms")
        )
        if not passages:
            return frame
        return inject_passages(
            frame,
            passages,
            role=self._params.passages_role,
            max_chars=self._params.max_passage_chars,
        )
