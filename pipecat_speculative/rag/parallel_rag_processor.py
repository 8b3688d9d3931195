"""Retrieval that runs beside speculation: single-flight, reused at commit, never reordering turns."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from loguru import logger
from pipecat.frames.frames import (
    CancelFrame,
    EagerEndOfTurnCancelFrame,
    ErrorFrame,
    Frame,
    InterruptionFrame,
    LLMContextFrame,
    StartFrame,
    SystemFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
)
from pipecat.processors.frame_processor import FrameCallback, FrameDirection, FrameProcessor
from pipecat.turns.user_stop.eager_match_policy import EagerMatchPolicy

from pipecat_speculative.metrics.timing_mark_frame import (
    RAG_DONE,
    RAG_SKIP,
    RAG_START,
    TimingMarkFrame,
)
from pipecat_speculative.pipecat_compat import call_event_handler, register_event_handler
from pipecat_speculative.rag.base_retriever import BaseRetriever
from pipecat_speculative.rag.passage_injection import inject_passages, query_text
from pipecat_speculative.rag.rag_params import RAGParams
from pipecat_speculative.rag.retrieval_cache import RetrievalCache, RetrievalResult
from pipecat_speculative.rag.retrieval_report import (
    RetrievalOutcome,
    RetrievalReport,
    RetrievalSource,
)

__all__ = ["ParallelRAGProcessor"]

# System frames that are never held behind a waiting context: they stop the pipeline or report
# a failure, and the turn frames they might overtake no longer matter then.
_NEVER_HELD = (CancelFrame, ErrorFrame, StartFrame)
# The turn frames a waiting speculation must not be overtaken by (see the class docstring).
_TURN_FRAMES = (UserStartedSpeakingFrame, UserStoppedSpeakingFrame)
_MAX_QUEUED_SPECULATIONS = 64
"""Speculative contexts remembered as queued; older entries were flushed by an interruption."""


@dataclass
class _Waiting:
    """A context held in the processor until its retrieval is done."""

    frame: LLMContextFrame
    query: str
    seq: int | None
    dropped: asyncio.Future[str]
    confirmed: bool = False
    releasing: bool = False
    held_since: float = field(default_factory=time.monotonic)

    @property
    def speculative(self) -> bool:
        return self.frame.speculation

    @property
    def droppable(self) -> bool:
        """A speculation still waiting (not released, not dropped yet)."""
        return self.speculative and not self.releasing and not self.dropped.done()


class ParallelRAGProcessor(FrameProcessor):
    """Injects retrieved passages into every inference, retrieving concurrently with the turn.

    Place it between the user aggregator and the LLM. Each ``LLMContextFrame`` (speculative or
    committed) gets the passages for its last user message, as a new message built by
    :func:`~pipecat_speculative.rag.passage_injection.inject_passages`, the same way for both
    kinds, so an adopted speculation is exactly what the commit would have run.

    **Retrieval is concurrent and single-flight.** Retrievals run in tasks (``create_task``,
    cancelled in ``cleanup``), keyed by the normalized query (Pipecat's ``NormalizedMatch``):
    a request for a query already in flight joins it, a finished result (an empty one too) is
    reused for ``cache_ttl_secs``. Retrieval starts as early as the text allows: at a
    :meth:`prefetch` (fed with the transcript by a
    :class:`~pipecat_speculative.rag.rag_transcript_tap.RAGTranscriptTap` placed before the user
    aggregator, which consumes transcripts and forwards none), and at the speculative context
    at the latest. So a speculation's retrieval overlaps the pause, and the commit reuses it.

    **Frame ordering while a context waits.** A context whose retrieval is not finished is held
    here for at most ``budget_secs``; this is the hazard Pipecat 1.14 has with a retriever that
    simply awaits in ``process_frame``: system frames overtake the delayed context, and the LLM
    then gets a withdrawn speculation after its turn ended and speaks it next to the real
    answer. Here:

    - Data frames queue behind the held context, in order, as they would behind a busy LLM.
    - A withdrawal (``EagerEndOfTurnCancelFrame``), an interruption, or a newer context while a
      speculation waits drops that speculation: it is never forwarded. A speculation that was
      withdrawn while still queued in this processor (the withdrawal is a system frame and
      overtakes it) is dropped when it comes up; contexts are numbered as they enter, as in
      :class:`~pipecat_speculative.services.speculation_aware_llm.SpeculationAwareLLMMixin`.
    - While a speculation waits, the turn frames (``UserStoppedSpeakingFrame``,
      ``UserStartedSpeakingFrame``) and every system frame after them are held and forwarded
      right after it, in arrival order. The LLM's SpeculationGate decides from the last turn
      frame it saw whether a starting speculation is held: a commit's stop that overtook its
      speculation would only make the gate speak it at once (still one answer), but a next
      turn's start that overtook it would make the gate hold the previous turn's confirmed
      answer for the next turn, which a withdrawal in that turn then discards, leaving a turn
      unanswered. Keeping the turn frames behind the context keeps the gate's view true.
    - Withdrawals and interruptions themselves are never held; a withdrawal that finds turn
      frames held goes out right after them, keeping the order they arrived in.
    - A committed context holds nothing back: it is not gated, so the order of system frames
      around it does not change what the LLM speaks. An interruption drops it, as Pipecat drops
      a queued context at the LLM.

    **Budget and failures.** The context waits at most ``budget_secs``; on timeout or a
    retriever error it goes on unchanged with a warning. The retrieval keeps running after a
    timeout and its result is cached, so a later commit of the same text can still use it.

    **Reports.** Each context produces a :class:`RetrievalReport` (event
    ``on_retrieval_report``, sync) and timing marks for the turn timing observer:
    ``rag_start`` when a retrieval starts, ``rag_done`` when a context got its retrieval (or
    gave up), ``rag_skip`` when it reused a finished result. Counters: ``retrievals_started``
    (of which ``prefetches_started`` by a prefetch; ``prefetch_hits``: contexts that joined or
    reused one of those), ``retrievals_joined``,
    ``retrievals_reused``, ``contexts_dropped``, ``timeouts``, ``errors``.

    Args:
        retriever: Where passages come from.
        params: Tuning; :class:`RAGParams` defaults when None.
        match_policy: When two queries are the same; Pipecat's ``NormalizedMatch`` when None.
        clock: Monotonic seconds for the cache and the reports.
        **kwargs: ``FrameProcessor`` arguments.
    """

    def __init__(
        self,
        *,
        retriever: BaseRetriever,
        params: RAGParams | None = None,
        match_policy: EagerMatchPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._retriever = retriever
        self._params = params or RAGParams()
        self._clock = clock
        self._cache = RetrievalCache(
            ttl_secs=self._params.cache_ttl_secs,
            max_entries=self._params.cache_max_entries,
            match_policy=match_policy,
            clock=clock,
        )
        self._waiting: _Waiting | None = None
        self._held: list[tuple[Frame, FrameDirection]] = []
        # Speculative contexts are numbered as they enter; a withdrawal voids those before it.
        self._speculative_entered = 0
        self._speculative_void_through = 0
        self._speculative_seq: dict[int, int] = {}
        self._started = False
        self._prefetch_text: str | None = None
        self._prefetch_task: asyncio.Task | None = None
        self.retrievals_started = 0
        self.prefetches_started = 0
        self.prefetch_hits = 0
        # Retrievals a prefetch started: a context served by one is a prefetch hit.
        self._prefetched: weakref.WeakSet[asyncio.Task] = weakref.WeakSet()
        self.retrievals_joined = 0
        self.retrievals_reused = 0
        self.contexts_dropped = 0
        self.timeouts = 0
        self.errors = 0
        register_event_handler(self, "on_retrieval_report", sync=True)

    @property
    def retriever(self) -> BaseRetriever:
        """The retriever passages come from."""
        return self._retriever

    @property
    def params(self) -> RAGParams:
        """The tuning in effect."""
        return self._params

    # ------------------------------------------------------------------ lifecycle

    async def setup(self, setup):
        """Warm the retriever up (model load, connection) within ``warmup_timeout_secs``."""
        await super().setup(setup)
        if self._params.warmup_timeout_secs <= 0:
            return
        try:
            await asyncio.wait_for(
                self._retriever.warmup(), timeout=self._params.warmup_timeout_secs
            )
        except Exception as e:  # a retriever that cannot warm up may still work later
            logger.warning(f"{self}: {self._retriever} warmup failed ({e!r}); first query pays")

    async def cleanup(self):
        """Cancel the prefetch timer and every retrieval still in flight."""
        await super().cleanup()
        self._started = False
        if self._prefetch_task is not None:
            task, self._prefetch_task = self._prefetch_task, None
            await self.cancel_task(task)
        for task in self._cache.in_flight():
            await self.cancel_task(task)
        self._cache.clear()

    # ------------------------------------------------------------------ prefetch

    def prefetch(self, text: str) -> None:
        """Start retrieving for what the user is saying, once the text stays the same a moment.

        Safe to call on every interim and final transcript: each call restarts the debounce
        (``prefetch_debounce_secs``), and the retrieval joins the cache like any other, so the
        speculation or the commit asking the same question later joins or reuses it.
        Ignored before the pipeline started, when prefetch is off, or for very short text.
        """
        debounce = self._params.prefetch_debounce_secs
        if not self._started or debounce is None:
            return
        text = text.strip()
        if len(text.split()) < self._params.prefetch_min_words:
            return
        self._prefetch_text = text
        if self._prefetch_task is None:
            self._prefetch_task = self.create_task(self._prefetch_after_debounce(debounce))

    async def _prefetch_after_debounce(self, debounce: float):
        try:
            while True:
                text = self._prefetch_text
                await asyncio.sleep(debounce)
                if text == self._prefetch_text:
                    break
        finally:
            self._prefetch_task = None
        if text:
            logger.debug(f"{self}: prefetching {text!r}")
            task, source = await self._acquire(text)
            if source == RetrievalSource.STARTED:
                self.prefetches_started += 1
                self._prefetched.add(task)

    # ------------------------------------------------------------------ frames

    async def queue_frame(
        self,
        frame: Frame,
        direction: FrameDirection = FrameDirection.DOWNSTREAM,
        callback: FrameCallback | None = None,
    ):
        """Number speculative contexts as they enter; void them on a withdrawal behind them.

        A withdrawal is a system frame and is processed before a speculative context queued
        ahead of it; the numbers tell which speculations it was meant for. A newer context
        supersedes a speculation still waiting for its retrieval, unless its turn was already
        confirmed (then it is the answer).
        """
        if direction == FrameDirection.DOWNSTREAM:
            if isinstance(frame, LLMContextFrame):
                if frame.speculation:
                    self._speculative_entered += 1
                    self._speculative_seq[frame.id] = self._speculative_entered
                    # An interruption flushes queued contexts without processing them, so their
                    # numbers are never popped: keep only the newest (none waits behind this many).
                    while len(self._speculative_seq) > _MAX_QUEUED_SPECULATIONS:
                        del self._speculative_seq[next(iter(self._speculative_seq))]
                waiting = self._waiting
                if waiting is not None and waiting.droppable and not waiting.confirmed:
                    self._drop(waiting, "superseded by a newer context")
            elif isinstance(frame, (EagerEndOfTurnCancelFrame, InterruptionFrame)):
                self._speculative_void_through = self._speculative_entered
        await super().queue_frame(frame, direction, callback)

    async def process_frame(self, frame: Frame, direction: FrameDirection):
        """Hold contexts for their retrieval; keep turn frames behind a waiting speculation."""
        await super().process_frame(frame, direction)
        if isinstance(frame, StartFrame):
            self._started = True
        if direction != FrameDirection.DOWNSTREAM:
            await self.push_frame(frame, direction)
        elif isinstance(frame, LLMContextFrame):
            await self._handle_context(frame)
        elif isinstance(frame, InterruptionFrame):
            await self._handle_interruption(frame)
        elif isinstance(frame, SystemFrame):
            await self._handle_system_frame(frame)
        else:
            await self.push_frame(frame, direction)

    async def _handle_interruption(self, frame: InterruptionFrame):
        # Pipecat has already cancelled the process task, and with it the wait of any held
        # context: the interruption drops it here, as it would drop a context queued at the LLM.
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            self._drop(waiting, "interrupted")
        held, self._held = self._held, []
        for f, d in held:
            await self.push_frame(f, d)
        await self.push_frame(frame)

    async def _handle_system_frame(self, frame: SystemFrame):
        waiting = self._waiting
        if waiting is None or isinstance(frame, _NEVER_HELD):
            await self.push_frame(frame)
            return
        if isinstance(frame, EagerEndOfTurnCancelFrame):
            if waiting.droppable:
                self._drop(waiting, "withdrawn")
            if not self._held:
                await self.push_frame(frame)
                return
        elif isinstance(frame, UserStoppedSpeakingFrame) and waiting.speculative:
            waiting.confirmed = True
        if self._held or (waiting.speculative and isinstance(frame, _TURN_FRAMES)):
            logger.trace(f"{self}: holding {frame} behind the waiting context")
            self._held.append((frame, FrameDirection.DOWNSTREAM))
            return
        await self.push_frame(frame)

    async def _handle_context(self, frame: LLMContextFrame):
        seq = self._speculative_seq.pop(frame.id, None) if frame.speculation else None
        query = query_text(frame)
        if self._void(seq):
            await self._report_dropped(frame, query, RetrievalSource.NONE, 0.0, "withdrawn")
            return
        if not query:
            await self._report(
                RetrievalReport(
                    query="",
                    speculative=frame.speculation,
                    source=RetrievalSource.NONE,
                    outcome=RetrievalOutcome.SKIPPED,
                )
            )
            await self.push_frame(frame)
            return
        task, source = await self._acquire(query)
        if source != RetrievalSource.STARTED and task in self._prefetched:
            self.prefetch_hits += 1
        if self._void(seq):
            await self._report_dropped(frame, query, source, 0.0, "withdrawn")
            return
        if task.done():
            await self._release(frame, query, source, task, waited=0.0)
            return

        loop = asyncio.get_running_loop()
        waiting = _Waiting(frame=frame, query=query, seq=seq, dropped=loop.create_future())
        self._waiting = waiting
        started = self._clock()
        try:
            await asyncio.wait(
                {task, waiting.dropped},
                timeout=self._params.budget_secs,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            # Interrupted (or the pipeline is cancelled): the interruption handler flushes.
            if self._waiting is waiting:
                self._waiting = None
            if not waiting.dropped.done():
                waiting.dropped.set_result("interrupted")
            raise
        waited = self._clock() - started
        if waiting.dropped.done():
            await self._report_dropped(frame, query, source, waited, waiting.dropped.result())
        else:
            waiting.releasing = True
            await self._release(frame, query, source, task, waited=waited)
        # Turn frames held behind the context follow it, in the order they arrived; frames
        # arriving meanwhile are appended and go out in this same loop.
        while self._held and self._waiting is waiting:
            held_frame, held_direction = self._held.pop(0)
            await self.push_frame(held_frame, held_direction)
        if self._waiting is waiting:
            self._waiting = None

    def _void(self, seq: int | None) -> bool:
        return seq is not None and seq <= self._speculative_void_through

    def _drop(self, waiting: _Waiting, reason: str):
        if not waiting.dropped.done():
            logger.debug(f"{self}: dropping a waiting speculation ({reason}): {waiting.query!r}")
            waiting.dropped.set_result(reason)

    # ------------------------------------------------------------------ retrieval

    async def _acquire(self, query: str) -> tuple[asyncio.Task[RetrievalResult], RetrievalSource]:
        """The retrieval for ``query``: joined, reused, or started now."""
        task = self._cache.find(query)
        if task is not None:
            if task.done():
                self.retrievals_reused += 1
                return task, RetrievalSource.REUSED
            self.retrievals_joined += 1
            return task, RetrievalSource.JOINED
        task = self.create_task(self._retrieve(query), name=f"{self}::retrieve")
        self._cache.add(query, task)
        self.retrievals_started += 1
        logger.debug(f"{self}: retrieving for {query!r}")
        await self.push_frame(TimingMarkFrame(mark=RAG_START, detail=query))
        return task, RetrievalSource.STARTED

    async def _retrieve(self, query: str) -> RetrievalResult:
        started = self._clock()
        try:
            passages = await self._retriever.retrieve(
                query, top_k=self._params.top_k, filter=self._params.filter
            )
        except asyncio.CancelledError:
            raise
        except Exception as e:
            logger.warning(f"{self}: {self._retriever} failed for {query!r}: {e!r}")
            return RetrievalResult(passages=None, error=repr(e), secs=self._clock() - started)
        return RetrievalResult(passages=tuple(passages), error=None, secs=self._clock() - started)

    async def _release(
        self,
        frame: LLMContextFrame,
        query: str,
        source: RetrievalSource,
        task: asyncio.Task[RetrievalResult],
        *,
        waited: float,
    ):
        result = task.result() if task.done() and not task.cancelled() else None
        report = RetrievalReport(
            query=query,
            speculative=frame.speculation,
            source=source,
            outcome=RetrievalOutcome.TIMEOUT,
            waited_secs=waited,
            retrieval_secs=result.secs if result is not None else None,
        )
        if result is None:
            self.timeouts += 1
            logger.warning(
                f"{self}: retrieval for {query!r} took over {self._params.budget_secs:g} s; "
                "answering without passages"
            )
            report = replace(report, detail=f"budget {self._params.budget_secs:g} s")
        elif result.passages is None:
            self.errors += 1
            logger.warning(f"{self}: retrieval for {query!r} failed; answering without passages")
            report = replace(report, outcome=RetrievalOutcome.ERROR, detail=result.error)
        elif not result.passages:
            report = replace(report, outcome=RetrievalOutcome.EMPTY)
        else:
            frame = inject_passages(
                frame,
                result.passages,
                role=self._params.passages_role,
                max_chars=self._params.max_passage_chars,
            )
            report = replace(report, outcome=RetrievalOutcome.PASSAGES, hits=len(result.passages))
        await self.push_frame(frame)
        mark = RAG_SKIP if source == RetrievalSource.REUSED else RAG_DONE
        await self.push_frame(TimingMarkFrame(mark=mark, detail=report.summary()))
        await self._report(report)

    async def _report_dropped(
        self,
        frame: LLMContextFrame,
        query: str,
        source: RetrievalSource,
        waited: float,
        reason: str,
    ):
        self.contexts_dropped += 1
        await self._report(
            RetrievalReport(
                query=query,
                speculative=frame.speculation,
                source=source,
                outcome=RetrievalOutcome.DROPPED,
                waited_secs=waited,
                detail=reason,
            )
        )

    async def _report(self, report: RetrievalReport):
        logger.debug(
            f"{self}: {'speculative' if report.speculative else 'committed'} context: "
            f"{report.summary()}"
        )
        await call_event_handler(self, "on_retrieval_report", report)
