"""Per-turn timing that stays correct under speculation: the Pipecat observer.

This is the thin shell around :class:`~pipecat_speculative.metrics.turn_timeline.TurnTimingTracker`:
it turns the frames it observes into timed moments, dispatches what the tracker decides to the
sinks and to its events, and runs the playback watchdog's timer.

Why not Pipecat's ``UserBotLatencyObserver``: under speculation the LLM's gate holds the response
until the commit, so the first push of anything downstream of the LLM is at release and all the
inference time shows up as "turn detection"; and it knows nothing of withdrawals. This observer
times a speculation from its context push, its first token from the LLM's TTFB metric (a system
frame, which passes the gate when it happens), and counts every speculation's outcome and cost. On
an ordinary turn it agrees with ``UserBotLatencyObserver`` (t0 → first bot audio).

**One clock.** Every moment is on the pipeline clock (monotonic, the clock ``FramePushed.timestamp``
and ``FrameProcessed.timestamp`` come from), in seconds. Frames are timed by their push, not by when
this observer gets to them (observers run on their own queue and lag). The only wall-clock input is
``VADUserStoppedSpeakingFrame.timestamp`` (``time.time()`` when the VAD decided); it is converted
with the offset between the two clocks read together at conversion time, so the conversion does
not depend on queueing either. Calls that do not come with a frame (``record_rag``, strategy
events, the watchdog) read the pipeline clock directly.

**Which push of a frame counts.** A frame is pushed again at every hop. The observer watches every
push (``observe_every_push=True``) and takes:

- the *first* push for what a frame marks as having happened (a context requested, a TTS context
  opened, audio produced, a metric reported): later hops only add queueing;
- only *downstream* pushes of broadcast frames (VAD, turn, withdrawal, bot speaking): a broadcast
  is two frames, one each way, and the downstream one is what the rest of the pipeline acts on;
- for answers, the push *into the output transport* (``output_types``): with speculative TTS,
  audio is produced before the commit and held after the TTS, so production is not delivery. This
  is the only hop that says an answer reached the user;
- the origin of a context frame by its source type: a context pushed by a user or assistant
  aggregator is an inference request, a context rebuilt on the way (RAG) is the same request;
- the LLM's start on a context from ``on_process_frame``, which is when it dequeues it, not when
  the aggregator queued it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from loguru import logger
from pipecat.clocks.base_clock import BaseClock
from pipecat.frames.frames import (
    BotStartedSpeakingFrame,
    BotStoppedSpeakingFrame,
    CancelFrame,
    EagerEndOfTurnCancelFrame,
    EndFrame,
    Frame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    MetricsFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    TTSStartedFrame,
    TTSStoppedFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.metrics.metrics import (
    LLMUsageMetricsData,
    TextAggregationMetricsData,
    TTFBMetricsData,
    TTSUsageMetricsData,
)
from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregator,
    LLMUserAggregator,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.llm_service import LLMService
from pipecat.services.tts_service import TTSService
from pipecat.transports.base_output import BaseOutputTransport
from pipecat.turns.user_stop.eager_match_policy import NormalizedMatch
from pipecat.utils.asyncio.task_manager import BaseTaskManager

from pipecat_speculative.metrics.alerts import Alert, AlertMonitor, AlertThresholds
from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.sinks.log_sink import LogSink
from pipecat_speculative.metrics.timing_mark_frame import (
    RAG_DONE,
    RAG_SKIP,
    RAG_START,
    TimingMarkFrame,
)
from pipecat_speculative.metrics.transcript_redaction import TranscriptRedaction
from pipecat_speculative.metrics.turn_record import (
    DebounceEntry,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
)
from pipecat_speculative.metrics.turn_timeline import (
    AnswerReadiness,
    LateAnswer,
    RagEvent,
    SpeculationResolved,
    TurnCompleted,
    TurnTimingTracker,
)
from pipecat_speculative.pipecat_compat import call_event_handler, register_event_handler

__all__ = ["TurnTimingObserver"]

_RAG_MARKS: dict[str, RagEvent] = {RAG_START: "start", RAG_DONE: "done", RAG_SKIP: "skip"}

# The watchdog re-reads its deadline at least this often, so a deadline armed for a new turn
# while the timer sleeps for an older one is never missed by more than this.
_WATCHDOG_TICK_SECS = 0.25


class TurnTimingObserver(BaseObserver):
    """Measures every user turn from the real end of speech, speculation included.

    Works from frames alone: with this project's speculative strategy, with Pipecat's own eager
    (Flux) speculation, and with ordinary non-speculative bots. :meth:`attach` adds what only the
    strategy knows (withdrawal reasons, the debounce history).

    Events (handlers run inline on the observer's own task, in order):

    - ``on_turn_completed(observer, record: TurnRecord)``: a turn was closed.
    - ``on_alert(observer, alert: Alert)``: a threshold was crossed (also logged as a warning).
    - ``on_answer_readiness(observer, secs: float)``: per speculative inference, once it is
      resolved and its LLM first token is known, the time from the speculation's start until its
      first audio would have been ready: its own start → first token (LLM queueing included), plus
      the first-sentence aggregation time, plus TTS request → first audio. The last two are the
      inference's own when its text reached the TTS before it was resolved (speculative TTS),
      otherwise the session's latest values measured on answers whose text the speculation gate
      did not hold (a held answer's first sentence is the hold). Not emitted before the session
      has a TTS first-audio measurement. This is what a "free patience" commit rule can wait
      for: committing earlier than that does not make the answer any sooner.
      :attr:`last_answer_readiness` has the breakdown.

    Example::

        timing = TurnTimingObserver(sinks=[JSONLSink("turns.jsonl"), PrometheusSink()])
        timing.attach(speculative_strategy)
        worker = PipelineWorker(pipeline, params=PipelineParams(enable_metrics=True,
                                enable_usage_metrics=True), observers=[timing])

    Metrics must be enabled for first token, first sentence and usage (``enable_metrics``,
    ``enable_usage_metrics``); without them those moments are None, never estimated.

    Args:
        sinks: Where records go. A :class:`LogSink` is added unless ``log`` is False.
        log: Log one line per turn.
        alert_thresholds: Alert thresholds; None uses :class:`AlertThresholds`' defaults.
        playback_margin_secs: Slack of the playback watchdog past the end of the audio; None
            disables it (a turn then stays open until the transport reports, or the next commit).
        output_types: Processor types that are the output: audio pushed into one reached the user.
        session_id: Id written in every record; a random one by default.
        clock: Seconds on the pipeline clock, for moments that do not come with a frame. None reads
            the pipeline's own clock. Tests inject one and push scripted ``FramePushed`` events.
        wall_clock: Wall-clock seconds, used only to convert the VAD's wall-clock timestamps.
        transcripts: What the log line's bound record keeps of the user's words: ``drop``
            (default), ``hash`` or ``off``; see
            :mod:`~pipecat_speculative.metrics.transcript_redaction`. Records given to
            ``on_turn_completed`` handlers and to other sinks are whole: each sink redacts
            for itself (``JSONLSink`` hashes by default).
        **kwargs: Passed to :class:`~pipecat.observers.base_observer.BaseObserver`.
    """

    def __init__(
        self,
        *,
        sinks: Sequence[BaseTurnTimingSink] | None = None,
        log: bool = True,
        alert_thresholds: AlertThresholds | None = None,
        playback_margin_secs: float | None = 1.5,
        output_types: tuple[type[FrameProcessor], ...] = (BaseOutputTransport,),
        session_id: str | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
        transcripts: TranscriptRedaction | str = TranscriptRedaction.DROP,
        **kwargs,
    ):
        super().__init__(observe_every_push=True, **kwargs)
        self._alerts = AlertMonitor(alert_thresholds)
        self._tracker = TurnTimingTracker(
            session_id=session_id or uuid.uuid4().hex[:12],
            window=self._alerts.thresholds.cancel_rate_window,
            playback_margin_secs=playback_margin_secs,
        )
        self._sinks: list[BaseTurnTimingSink] = list(sinks or [])
        if log:
            self._sinks.insert(0, LogSink(name=self.name, transcripts=transcripts))
        self._output_types = output_types
        self._clock = clock
        self._wall_clock = wall_clock
        self._pipeline_clock: BaseClock | None = None
        self._pipeline_seen = False
        self._aggregator_seen = False
        self._pending_alerts: list[Alert] = []
        self._last_readiness: AnswerReadiness | None = None
        self._watchdog_task: asyncio.Task | None = None
        # The watchdog is a task of the pipeline's task manager: none before setup().
        self._has_task_manager = kwargs.get("task_manager") is not None
        self._session_ended = False
        # The latest interim transcript since the last final, in memory only: whether the final
        # says the same is recorded, never the words.
        self._last_interim: str | None = None
        self._interim_at_stop: str | None = None
        self._match = NormalizedMatch()

        register_event_handler(self, "on_turn_completed", sync=True)
        register_event_handler(self, "on_alert", sync=True)
        register_event_handler(self, "on_answer_readiness", sync=True)

    # ------------------------------------------------------------ public API

    @property
    def session_id(self) -> str:
        """The session id written in every record."""
        return self._tracker.session_id

    @property
    def tracker(self) -> TurnTimingTracker:
        """The synchronous core (for inspection; feed it through the observer)."""
        return self._tracker

    @property
    def sinks(self) -> list[BaseTurnTimingSink]:
        """The sinks, log sink first when enabled."""
        return list(self._sinks)

    @property
    def last_answer_readiness(self) -> AnswerReadiness | None:
        """The latest answer readiness, with its parts."""
        return self._last_readiness

    def summary(self) -> SessionSummary:
        """The session summary so far."""
        return self._tracker.summary()

    def attach(self, strategy: Any):
        """Subscribe to a speculative turn strategy's events.

        The strategy is duck-typed: anything with Pipecat's ``add_event_handler`` and the events
        ``on_speculation_started/withdrawn/adopted``, ``on_user_turn_committed`` and
        ``on_debounce_changed`` (records from ``pipecat_speculative.turns.speculation_events``).
        Outcomes and their times still come from frames; the strategy adds withdrawal reasons,
        the debounce in force and its changes, and the committed text.

        Args:
            strategy: The strategy.

        Raises:
            TypeError: If it has no ``add_event_handler``.
        """
        add = getattr(strategy, "add_event_handler", None)
        if not callable(add):
            raise TypeError(f"{strategy!r} has no add_event_handler(); cannot attach")
        add("on_speculation_started", self._on_speculation_started)
        add("on_speculation_withdrawn", self._on_speculation_withdrawn)
        add("on_speculation_adopted", self._on_speculation_adopted)
        add("on_user_turn_committed", self._on_user_turn_committed)
        add("on_debounce_changed", self._on_debounce_changed)
        self._tracker.tuning(**_strategy_tuning(strategy))
        self._match = getattr(getattr(strategy, "planner", None), "match_policy", self._match)
        logger.debug(f"{self}: attached to {strategy}")

    def record_warmup(self, service: str, secs: float, ok: bool):
        """Record a connection warmup's duration and outcome.

        Goes to the session summary and the sinks at once; a failed warmup raises an alert
        (logged at once, its ``on_alert`` event delivered on the observer's next frame).

        Args:
            service: The service warmed (its name).
            secs: How long the warmup took.
            ok: Whether it succeeded.
        """
        entry = WarmupEntry(service=service, secs=secs, ok=ok)
        self._tracker.warmup(entry)
        summary = self._tracker.summary()
        self._to_sinks("on_warmup", entry, summary)
        for alert in self._alerts.check_warmup(entry):
            self._raise_alert_now(alert)

    def record_rag(self, event: RagEvent, *, detail: str | None = None):
        """Record retrieval for the upcoming answer: ``"start"``, ``"done"`` or ``"skip"``.

        Prefer pushing a :class:`TimingMarkFrame` from the processor; this is for code outside
        the pipeline. Ignored before the pipeline clock is known (no frame observed yet).
        """
        now = self._now()
        if now is None:
            logger.debug(f"{self}: RAG {event} before the pipeline clock is known, ignored")
            return
        self._tracker.rag(now, event)
        logger.trace(f"{self}: RAG {event}{f' ({detail})' if detail else ''}")

    async def check_playback_watchdog(self):
        """Fire the playback watchdog now if its deadline passed (the timer does this itself)."""
        now = self._now()
        if now is not None and self._tracker.poll(now):
            await self._dispatch()

    # ---------------------------------------------------------- observer API

    async def on_push_frame(self, data: FramePushed):
        """Turn a frame push into a timed moment."""
        frame = data.frame
        self._capture_pipeline(data.source)
        at = self._frame_time(data.timestamp)
        if at is None:
            return

        if isinstance(frame, TTSAudioRawFrame) and isinstance(data.destination, self._output_types):
            # Every push into the output counts (audio is delivered hop by hop), not only the first.
            self._tracker.audio_delivered(at, context_id=frame.context_id, secs=_audio_secs(frame))
            self._ensure_watchdog()
            if not data.first_push:
                await self._dispatch()
                return

        if _is_last_hop_of_session_end(data):
            # Everything pushed before it has been observed (this observer's queue is in push
            # order), so nothing of the session is still on its way.
            await self._end_session(at)
            return

        if not data.first_push:
            return
        if isinstance(frame, MetricsFrame):
            self._handle_metrics(frame, data.source, at)
        elif data.direction == FrameDirection.DOWNSTREAM:
            self._handle_downstream(frame, data.source, at)
        else:
            return
        await self._dispatch()

    async def on_process_frame(self, data: FrameProcessed):
        """Time the LLM starting on a context (it dequeued it)."""
        if (
            isinstance(data.frame, LLMContextFrame)
            and isinstance(data.processor, LLMService)
            and data.direction == FrameDirection.DOWNSTREAM
        ):
            self._capture_pipeline(data.processor)
            at = self._frame_time(data.timestamp)
            if at is None:
                return
            self._tracker.llm_processing_started(at, llm=data.processor.name, key=data.frame.id)
            await self._dispatch()

    async def cleanup(self):
        """End the session (closing any open turn), stop the watchdog, close the sinks."""
        await super().cleanup()
        if self._watchdog_task is not None:
            task, self._watchdog_task = self._watchdog_task, None
            await self.cancel_task(task)
        now = self._now()
        await self._end_session(now if now is not None else 0.0)

    # ------------------------------------------------------------ frames

    def _handle_downstream(self, frame: Frame, source: FrameProcessor, at: float):
        """Feed the tracker the moment a downstream frame's first push stands for."""
        if isinstance(frame, VADUserStoppedSpeakingFrame):
            self._interim_at_stop = self._last_interim
            self._handle_vad_stop(frame, at)
        elif isinstance(frame, VADUserStartedSpeakingFrame):
            self._interim_at_stop = None
            self._tracker.speech_started(at)
        elif isinstance(frame, InterimTranscriptionFrame):
            if frame.text.strip():
                self._last_interim = frame.text
                self._tracker.user_words(at)
        elif isinstance(frame, TranscriptionFrame):
            if frame.text.strip():
                # A final in the pause is compared with the interim a speculation at the VAD
                # stop answered (a later interim does not change a speculation in flight).
                interim = self._interim_at_stop or self._last_interim
                self._last_interim = self._interim_at_stop = None
                matched = None if interim is None else self._match.matches(interim, frame.text)
                self._tracker.user_words(at, final=True, matched=matched)
        elif isinstance(frame, UserStartedSpeakingFrame):
            self._tracker.user_turn_started(at)
        elif isinstance(frame, UserStoppedSpeakingFrame):
            self._tracker.user_turn_committed(at, commit_unix=self._to_wall(at))
        elif isinstance(frame, EagerEndOfTurnCancelFrame):
            self._tracker.speculation_withdrawn(at, by_llm=isinstance(source, LLMService))
        elif isinstance(frame, LLMContextFrame):
            self._handle_context(frame, source, at)
        elif isinstance(frame, InterruptionFrame):
            self._tracker.interruption(at)
        elif isinstance(frame, TTSStartedFrame):
            self._tracker.tts_started(at, context_id=frame.context_id)
        elif isinstance(frame, TTSStoppedFrame):
            self._tracker.tts_stopped(at, context_id=frame.context_id)
        elif isinstance(frame, TTSAudioRawFrame):
            self._tracker.tts_audio(at, context_id=frame.context_id)
        elif isinstance(frame, BotStartedSpeakingFrame):
            self._tracker.bot_started_speaking(at)
            self._ensure_watchdog()
        elif isinstance(frame, BotStoppedSpeakingFrame):
            self._tracker.bot_stopped_speaking(at)
        elif isinstance(frame, TimingMarkFrame):
            event = _RAG_MARKS.get(frame.mark)
            if event is not None:
                self._tracker.rag(at, event)

    def _handle_metrics(self, frame: MetricsFrame, source: FrameProcessor, at: float):
        if isinstance(source, LLMService):
            for item in frame.data:
                if isinstance(item, TTFBMetricsData):
                    self._tracker.llm_ttfb(at, llm=source.name, value_secs=item.value)
                elif isinstance(item, LLMUsageMetricsData):
                    self._tracker.llm_usage(
                        llm=source.name,
                        prompt_tokens=item.value.prompt_tokens,
                        completion_tokens=item.value.completion_tokens,
                    )
        elif isinstance(source, TTSService):
            for item in frame.data:
                if isinstance(item, TextAggregationMetricsData):
                    self._tracker.first_sentence(at)
                elif isinstance(item, TTSUsageMetricsData):
                    self._tracker.tts_usage(characters=item.value)

    def _handle_vad_stop(self, frame: VADUserStoppedSpeakingFrame, pushed_at: float):
        decided_at = self._from_wall(frame.timestamp)
        if decided_at is None:
            decided_at = pushed_at
        self._tracker.vad_stopped(
            decided_at, stop_secs=frame.stop_secs, t0_unix=frame.timestamp - frame.stop_secs
        )

    def _handle_context(self, frame: LLMContextFrame, source: FrameProcessor, at: float):
        is_aggregator = isinstance(source, (LLMUserAggregator, LLMAssistantAggregator))
        if is_aggregator:
            self._aggregator_seen = True
        if isinstance(source, LLMAssistantAggregator):
            # After every response the assistant aggregator pushes the updated context
            # downstream (Pipecat's push_aggregation), past the LLM: nothing runs on it. Taken
            # for an inference it never started, one per answer piled up in the tracker (the
            # soak found them filling its cap) and could take a rebuilt context's LLM start.
            return
        if not is_aggregator and self._aggregator_seen:
            # Rebuilt on the way (RAG): the LLM start matches it to the request it came from.
            return
        self._tracker.inference_started(
            at,
            key=frame.id,
            speculative=frame.speculation,
            text=_last_user_text(frame),
        )

    # ------------------------------------------------------------ dispatch

    async def _dispatch(self):
        for alert in self._pending_alerts:
            await call_event_handler(self, "on_alert", alert)
        self._pending_alerts = []
        for event in self._tracker.drain():
            if isinstance(event, TurnCompleted):
                await self._turn_completed(event.record, event.summary)
            elif isinstance(event, SpeculationResolved):
                self._to_sinks(
                    "on_speculation_resolved", event.outcome, event.reason, event.summary
                )
                for alert in self._alerts.check_cancel_rate(event.summary):
                    await self._raise_alert(alert)
            elif isinstance(event, AnswerReadiness):
                self._last_readiness = event
                logger.debug(
                    f"{self}: speculation {event.index} answer readiness {event.secs * 1000:.0f} ms "
                    f"(LLM first token {event.llm_first_token_secs * 1000:.0f}, first sentence "
                    f"{_fmt_ms(event.first_sentence_secs)}, TTS first audio "
                    f"{event.tts_first_audio_secs * 1000:.0f}, {'own' if event.own_tts else 'session'} TTS)"
                )
                await call_event_handler(self, "on_answer_readiness", event.secs)
            elif isinstance(event, LateAnswer):
                summary = self._tracker.summary()
                logger.warning(
                    f"{self}: audio of another response ({event.key}) reached the output after "
                    f"turn {event.turn} was closed ({summary.late_answers} so far)"
                )
                self._to_sinks("on_late_answer", event.turn, summary)

    async def _turn_completed(self, record: TurnRecord, summary: SessionSummary):
        if record.playback_watchdog_fired:
            logger.warning(
                f"{self}: turn {record.turn}: playback never reported finishing; closed after "
                f"{_fmt_secs(record.watchdog_waited_secs)} s from bot started speaking with "
                f"{_fmt_secs(record.audio_secs)} s of audio (margin "
                f"{_fmt_secs(self._tracker.playback_margin_secs)} s); "
                f"{summary.playback_watchdog_fired} so far"
            )
        self._to_sinks("on_turn", record, summary)
        for alert in self._alerts.check_turn(record):
            await self._raise_alert(alert)
        await call_event_handler(self, "on_turn_completed", record)

    async def _raise_alert(self, alert: Alert):
        self._log_alert(alert)
        await call_event_handler(self, "on_alert", alert)

    def _raise_alert_now(self, alert: Alert):
        self._log_alert(alert)
        self._pending_alerts.append(alert)

    def _log_alert(self, alert: Alert):
        logger.warning(f"{self}: alert {alert.kind.value}: {alert.message}")
        self._to_sinks("on_alert", alert)

    def _to_sinks(self, method: str, *args: Any):
        for sink in self._sinks:
            try:
                getattr(sink, method)(*args)
            except Exception as e:
                logger.error(f"{self}: {sink} failed in {method}: {e}")

    async def _end_session(self, at: float):
        if self._session_ended:
            return
        self._session_ended = True
        self._tracker.session_ended(at)
        await self._dispatch()
        for alert in self._pending_alerts:
            await call_event_handler(self, "on_alert", alert)
        self._pending_alerts = []
        self._to_sinks("on_session_end", self._tracker.summary())
        self._to_sinks("close")

    # ------------------------------------------------------------ strategy

    def _on_speculation_started(self, strategy: Any, record: Any):
        self._tracker.annotate_speculation_started(
            strategy_id=record.id,
            text=record.text,
            delay_secs=record.delay_secs,
            backed_off=bool(getattr(record, "backed_off", False)),
        )

    def _on_speculation_withdrawn(self, strategy: Any, record: Any):
        self._speculation_ready(record)
        reason = getattr(record, "withdrawal_reason", None)
        value = getattr(reason, "value", reason)
        self._tracker.annotate_speculation_withdrawn(
            strategy_id=record.id, reason=str(value) if value is not None else None
        )

    def _on_speculation_adopted(self, strategy: Any, record: Any):
        # Adoption is the commit frame's to time; the strategy's event only confirms it.
        self._speculation_ready(record)
        logger.trace(f"{self}: strategy adopted speculation {record.id}")

    def _speculation_ready(self, record: Any):
        ready_at, started_at = (
            getattr(record, "ready_at", None),
            getattr(record, "started_at", None),
        )
        if ready_at is not None and started_at is not None:
            self._tracker.annotate_speculation_ready(
                strategy_id=record.id, secs=ready_at - started_at
            )

    def _on_user_turn_committed(self, strategy: Any, commit: Any):
        self._tracker.annotate_commit(text=commit.text)

    def _on_debounce_changed(self, strategy: Any, change: Any):
        entry = DebounceEntry(
            at_turn=self._tracker.turns_committed,
            old_secs=change.old_secs,
            new_secs=change.new_secs,
            reason=change.reason,
            window_cancel_rate=change.window_cancel_rate,
            samples=change.samples,
        )
        self._tracker.debounce_changed(entry)
        self._to_sinks("on_debounce_changed", entry, self._tracker.summary())

    # ------------------------------------------------------------ clocks

    def _capture_pipeline(self, processor: FrameProcessor):
        if self._pipeline_seen:
            return
        try:
            setup = processor.processor_setup
        except Exception:
            return
        self._pipeline_seen = True
        self._pipeline_clock = setup.clock
        self._to_sinks("on_pipeline_setup", setup)

    def _now(self) -> float | None:
        if self._clock is not None:
            return self._clock()
        if self._pipeline_clock is not None:
            ns = self._pipeline_clock.get_time()
            if ns > 0:
                return ns / 1e9
        return None

    def _frame_time(self, timestamp_ns: int) -> float | None:
        # A push before the pipeline clock started carries 0.
        return timestamp_ns / 1e9 if timestamp_ns > 0 else self._now()

    def _from_wall(self, wall: float) -> float | None:
        """A wall-clock time on the pipeline clock, by the offset between them read now."""
        now = self._now()
        if now is None:
            return None
        return wall - (self._wall_clock() - now)

    def _to_wall(self, at: float) -> float | None:
        now = self._now()
        if now is None:
            return None
        return at + (self._wall_clock() - now)

    # ------------------------------------------------------------ watchdog

    async def setup(self, task_manager: BaseTaskManager):
        """Take the pipeline's task manager: the playback watchdog runs as one of its tasks."""
        await super().setup(task_manager)
        self._has_task_manager = True

    def _ensure_watchdog(self):
        if (
            self._watchdog_task is None
            and self._has_task_manager
            and self._tracker.playback_deadline is not None
        ):
            self._watchdog_task = self.create_task(self._watchdog_loop(), "playback_watchdog")

    async def _watchdog_loop(self):
        try:
            while True:
                deadline = self._tracker.playback_deadline
                now = self._now()
                if deadline is None or now is None:
                    return
                if now >= deadline:
                    await self.check_playback_watchdog()
                await asyncio.sleep(max(0.0, min(deadline - now, _WATCHDOG_TICK_SECS)))
        finally:
            if self._watchdog_task is asyncio.current_task():
                self._watchdog_task = None


def _strategy_tuning(strategy: Any) -> dict[str, float | None]:
    """The settings a what-if replay starts from, read off a speculative strategy (duck-typed)."""
    planner = getattr(strategy, "planner", None)
    params = getattr(planner, "params", None)
    debounce = getattr(planner, "debounce", None)
    # The free-patience rule's floor; other rules keep theirs private (None: unknown).
    floor = getattr(getattr(strategy, "commit_strategy", None), "floor_secs", None)

    def number(value: Any) -> float | None:
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    return {
        "debounce_initial_secs": number(getattr(debounce, "delay_secs", None)),
        "debounce_min_secs": number(getattr(getattr(debounce, "params", None), "min_secs", None)),
        "commit_floor_secs": number(floor),
        "resume_backoff": number(getattr(params, "resume_backoff", None)),
    }


def _is_last_hop_of_session_end(data: FramePushed) -> bool:
    """An EndFrame or CancelFrame pushed into the last processor of the pipeline."""
    return (
        isinstance(data.frame, (EndFrame, CancelFrame))
        and data.direction == FrameDirection.DOWNSTREAM
        and data.destination.next is None
    )


def _audio_secs(frame: TTSAudioRawFrame) -> float:
    bytes_per_sec = frame.sample_rate * max(frame.num_channels, 1) * 2
    return len(frame.audio) / bytes_per_sec if bytes_per_sec > 0 else 0.0


def _last_user_text(frame: LLMContextFrame) -> str | None:
    for message in reversed(frame.context.messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            texts = [p.get("text", "") for p in content if isinstance(p, dict) and "text" in p]
            return " ".join(t for t in texts if t) or None
        return None
    return None


def _fmt_ms(secs: float | None) -> str:
    return "n/a" if secs is None else f"{secs * 1000:.0f}"


def _fmt_secs(secs: float | None) -> str:
    return "n/a" if secs is None else f"{secs:.2f}"
