"""The synchronous core of the turn timing observer: moments in, turn records out.

:class:`TurnTimingTracker` is fed what happened and when, on one clock (seconds, the pipeline's
monotonic clock in production, a scripted one in tests). It never awaits, owns no task and reads
no clock, so every interleaving can be replayed exactly. The observer shell only translates frames
into these calls and dispatches what :meth:`TurnTimingTracker.drain` returns.

How a turn is put together::

    VAD stop ─► speculation k (context push) ─► LLM starts k ─► TTFB(k) ─► [gate holds k's text]
       │            └─ withdrawn (cancel frame) ─► TTFB after this = the bogus cancel TTFB, ignored
       └── t0 = VAD stop − stop_secs                                 commit ─► k adopted
                                   first sentence ─► TTS request ─► TTS first audio ─► bot started
                                                                                        └─► bot stopped
                                                                                            = record

Attribution rules, and why:

- **Two turns can be live at once**: the committed turn waiting for its answer and playback, and
  the next user turn already speaking. User-phase moments (VAD, speculations, withdrawals, commit)
  go to the *open* turn; answer-phase moments (bot speech, delivered audio) go to the *answering*
  turn. A new commit closes an answering turn still open (``"superseded"``).
- **Inferences are followed at the LLM**, not at the aggregator: the LLM processes contexts one at
  a time, so its metrics (TTFB, usage) belong to the context it most recently started processing.
  The aggregator's push of a speculative context is the speculation start; the LLM starting it is
  the ``llm_request`` moment (the difference is queueing, or RAG in between).
- **The bogus cancellation TTFB**: cancelling an inference before its first token makes Pipecat's
  ``stop_all_metrics()`` emit a TTFB equal to the time until the cancel. A TTFB for an inference
  that was already withdrawn or interrupted is therefore not a first token; it is ignored and
  counted (``ignored_ttfb``).
- **TTS work belongs to the inference the LLM last started**; a TTS context id, once bound to an
  inference, keeps later audio of that context with it. Under stock Pipecat the gate keeps
  speculative text from the TTS until the commit; with speculative TTS, audio synthesized for a
  withdrawn speculation is counted as its wasted characters, not as the turn's.
- **Answers are counted at the output**: a response counts once its audio reached the output
  transport, keyed by TTS context id. Audio that reaches the output after its turn closed is a late
  answer (session counter and a warning), since the record was already emitted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pipecat_speculative.metrics.playback_watchdog import PlaybackWatchdog
from pipecat_speculative.metrics.speculation_ledger import SpeculationLedger
from pipecat_speculative.metrics.turn_record import (
    DebounceEntry,
    PauseEntry,
    SessionSummary,
    SpeculationEntry,
    TurnRecord,
    WarmupEntry,
)

__all__ = [
    "AnswerReadiness",
    "LateAnswer",
    "RagEvent",
    "SpeculationResolved",
    "TimingEvent",
    "TurnCompleted",
    "TurnTimingTracker",
]

RagEvent = Literal["start", "done", "skip"]

_TOOL_CALL = "tool_call"

# Strategy reports kept while waiting for the frames they describe.
_MAX_PENDING_REPORTS = 32
_MAX_TRACKED = 256
"""Most inferences (and TTS contexts) tracked at once. Those of closed turns are forgotten as
turns close; inferences of no user turn (a greeting, an app-triggered reply) never close, so
the oldest are dropped past this bound: a late frame of one that old has nothing to time."""


@dataclass(frozen=True)
class TurnCompleted:
    """A turn record was closed.

    Parameters:
        record: The record.
        summary: The session summary right after it.
    """

    record: TurnRecord
    summary: SessionSummary


@dataclass(frozen=True)
class SpeculationResolved:
    """A speculation was adopted or withdrawn.

    Parameters:
        index: Its session-wide index.
        outcome: ``"adopted"`` or ``"withdrawn"``.
        reason: Withdrawal reason value, if known.
        summary: The session summary right after it.
    """

    index: int
    outcome: str
    reason: str | None
    summary: SessionSummary


@dataclass(frozen=True)
class AnswerReadiness:
    """How long a speculative inference took, from its start, to have its first audio ready.

    ``secs`` = ``llm_first_token_secs`` + ``first_sentence_secs`` (0 when unknown, e.g. token
    streaming TTS) + ``tts_first_audio_secs``. The LLM part is this inference's own, from its
    context push (queueing included) to its real first token. The other two are this inference's
    own when its text reached the TTS before it was resolved (speculative TTS); otherwise they are
    the session's latest values measured on answers whose text was not held (``own_tts`` False),
    because under stock Pipecat a speculation's text does not reach the TTS before the commit.

    Parameters:
        index: Session-wide index of the speculation.
        secs: The total.
        llm_first_token_secs: Speculation start → LLM first token.
        first_sentence_secs: First token → first sentence, None if unknown.
        tts_first_audio_secs: TTS request → first audio.
        own_tts: Whether the last two were measured on this inference.
    """

    index: int
    secs: float
    llm_first_token_secs: float
    first_sentence_secs: float | None
    tts_first_audio_secs: float
    own_tts: bool


@dataclass(frozen=True)
class LateAnswer:
    """Audio of a response not yet counted reached the output after its turn was closed.

    Parameters:
        turn: Index of the closed turn it most likely belongs to.
        key: Its TTS context id.
    """

    turn: int
    key: str


TimingEvent = TurnCompleted | SpeculationResolved | AnswerReadiness | LateAnswer


@dataclass
class _Inference:
    key: int
    speculative: bool
    follow_up: bool
    started_at: float
    text: str | None
    turn: _Turn | None
    spec_index: int | None = None
    strategy_id: int | None = None
    delay_secs: float | None = None
    reason: str | None = None
    reason_source: str | None = None
    llm: str | None = None
    llm_started_at: float | None = None
    first_token_at: float | None = None
    cancelled_at: float | None = None
    ignored_ttfb_secs: float | None = None
    ready_secs: float | None = None
    withdrawn_at: float | None = None
    adopted_at: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tts_characters: int | None = None
    first_sentence_at: float | None = None
    tts_started_at: float | None = None
    tts_first_audio_at: float | None = None
    readiness_emitted: bool = False

    @property
    def resolved_at(self) -> float | None:
        return self.adopted_at if self.adopted_at is not None else self.withdrawn_at

    @property
    def withdrawn(self) -> bool:
        return self.withdrawn_at is not None

    @property
    def counts_toward_cancel_rate(self) -> bool:
        return self.withdrawn and self.reason != _TOOL_CALL


@dataclass
class _Turn:
    vad_stop_at: float | None = None
    t0: float | None = None
    t0_unix: float | None = None
    stop_secs: float | None = None
    committed_at: float | None = None
    commit_unix: float | None = None
    index: int | None = None
    commit_text: str | None = None
    speech_since_commit: bool = False
    inferences: list[_Inference] = field(default_factory=list)
    rag: dict[str, float] = field(default_factory=dict)
    bot_started_at: float | None = None
    bot_stopped_at: float | None = None
    speaking: bool = False
    answer_keys: set[str] = field(default_factory=set)
    audio_secs: float = 0.0
    interrupted: bool = False
    ignored_ttfb: int = 0
    # Pauses: the closed ones, the VAD stop of the current one, and the resumed speech that
    # ended the last one (its VAD start, and its first words) until the next VAD stop.
    pauses: list[PauseEntry] = field(default_factory=list)
    pause_stop_at: float | None = None
    resumed: PauseEntry | None = None
    resumed_at: float | None = None
    words_at: float | None = None
    pause_final: tuple[float, bool | None] | None = None
    speech_after_commit_at: float | None = None
    first_speech_at: float | None = None
    first_speech_secs: float | None = None
    first_words_at: float | None = None


class TurnTimingTracker:
    """Builds per-turn timing records and session accounting from timed moments.

    Every ``at`` is seconds on the caller's one clock. Call the method for each moment as it is
    observed, then :meth:`drain` for the events it produced. Moments may arrive slightly out of
    order (system frames overtake queued ones); durations are computed from the times given, not
    from arrival order, and never come out negative.

    Args:
        session_id: Reported in every record.
        window: Counted outcomes in the window cancel rate.
        playback_margin_secs: Slack of the playback watchdog; None disables it.
    """

    def __init__(
        self,
        *,
        session_id: str,
        window: int = 20,
        playback_margin_secs: float | None = 1.5,
    ):
        self._session_id = session_id
        self._ledger = SpeculationLedger(session_id, window=window)
        self._watchdog = (
            PlaybackWatchdog(playback_margin_secs) if playback_margin_secs is not None else None
        )
        self._open: _Turn | None = None
        self._answering: _Turn | None = None
        self._last_closed: _Turn | None = None
        self._turns_committed = 0
        self._spec_count = 0
        self._synthetic_keys = -1
        self._inferences: dict[int, _Inference] = {}
        self._awaiting_llm: list[_Inference] = []
        self._llm_current: dict[str, _Inference] = {}
        self._last_llm_inference: _Inference | None = None
        self._tts_contexts: dict[str, _Inference] = {}
        self._last_tts_inference: _Inference | None = None
        self._by_strategy_id: dict[int, _Inference] = {}
        self._pending_strategy: list[tuple[int, str, float]] = []
        self._pending_reasons: dict[int, str] = {}
        self._pending_ready: dict[int, float] = {}
        self._recent_first_sentence_secs: float | None = None
        self._recent_tts_first_audio_secs: float | None = None
        self._events: list[TimingEvent] = []

    def __str__(self):
        return f"TurnTimingTracker({self._session_id})"

    # ------------------------------------------------------------------ state

    @property
    def session_id(self) -> str:
        """The session id."""
        return self._session_id

    @property
    def playback_deadline(self) -> float | None:
        """When the playback watchdog fires for the answering turn, None if not armed."""
        if self._watchdog is None or self._answering is None:
            return None
        return self._watchdog.deadline

    @property
    def playback_margin_secs(self) -> float | None:
        """The watchdog margin, None if disabled."""
        return self._watchdog.margin_secs if self._watchdog else None

    @property
    def recent_tts_first_audio_secs(self) -> float | None:
        """The latest TTS request → first audio measured in the session."""
        return self._recent_tts_first_audio_secs

    def summary(self) -> SessionSummary:
        """Session summary snapshot."""
        return self._ledger.summary()

    def drain(self) -> list[TimingEvent]:
        """Take the events produced since the last call, in order."""
        events, self._events = self._events, []
        return events

    # ------------------------------------------------------------ user phase

    def speech_started(self, at: float):
        """The VAD heard speech (``VADUserStartedSpeakingFrame``).

        A pause that ends in speech was not the end of the turn, so the open turn forgets its VAD
        stop: t0 is the last VAD stop before the commit.
        """
        if self._answering is not None:
            self._answering.speech_since_commit = True
            if self._answering.speech_after_commit_at is None:
                self._answering.speech_after_commit_at = at
        turn = self._user_turn()
        if turn.first_speech_at is None and turn.pause_stop_at is None and not turn.pauses:
            turn.first_speech_at = at
        if turn.pause_stop_at is not None and turn.resumed is None:
            turn.resumed = _pause_entry(turn, at, resumed=True)
            turn.resumed_at = at
            turn.words_at = None
        turn.pause_stop_at = None
        turn.vad_stop_at = None
        turn.t0 = None
        turn.t0_unix = None
        turn.stop_secs = None

    def vad_stopped(self, at: float, *, stop_secs: float, t0_unix: float | None = None):
        """The VAD decided speech ended (``VADUserStoppedSpeakingFrame``).

        Args:
            at: When the VAD decided (its frame's timestamp, converted to this clock).
            stop_secs: The silence the VAD waited for; t0 = ``at - stop_secs``.
            t0_unix: Wall-clock t0, for display.
        """
        answering = self._answering
        if (
            answering is not None
            and answering.vad_stop_at is None
            and not answering.speech_since_commit
            and self._open is None
        ):
            # The commit came first (an STT that ends turns itself), this is the same speech.
            turn = answering
        else:
            turn = self._user_turn()
            self._close_resumed(turn, at)
            if turn.first_speech_at is not None and turn.first_speech_secs is None:
                turn.first_speech_secs = max(0.0, at - turn.first_speech_at)
            turn.pause_stop_at = at
            turn.pause_final = None
        turn.vad_stop_at = at
        turn.stop_secs = stop_secs
        turn.t0 = at - stop_secs
        turn.t0_unix = t0_unix

    def user_words(self, at: float, *, final: bool = False, matched: bool | None = None):
        """A transcript with words arrived.

        Args:
            at: When.
            final: A final transcript (else an interim one).
            matched: For a final: whether it said what the latest interim before it said
                (None: no interim came before it).
        """
        turn = self._open
        if turn is None:
            return
        if turn.first_speech_at is not None and turn.first_words_at is None:
            turn.first_words_at = at
        if turn.resumed_at is not None and turn.words_at is None and at >= turn.resumed_at:
            turn.words_at = at
        if final and turn.pause_stop_at is not None and at >= turn.pause_stop_at:
            turn.pause_final = (at - turn.pause_stop_at, matched)

    def user_turn_started(self, at: float):
        """The user turn started (``UserStartedSpeakingFrame``)."""
        if self._answering is not None:
            self._answering.speech_since_commit = True
            if self._answering.speech_after_commit_at is None:
                # An interruption can end the answer before the VAD start is observed.
                self._answering.speech_after_commit_at = at
        self._user_turn()

    def inference_started(
        self,
        at: float,
        *,
        key: int,
        speculative: bool,
        text: str | None = None,
        follow_up: bool = False,
    ):
        """An inference was requested (an ``LLMContextFrame`` pushed by its origin).

        Args:
            at: When the context was pushed.
            key: Identity of the context frame (its id), to recognise it at the LLM.
            speculative: The frame's ``speculation`` flag.
            text: The user text it answers (last user message), for the record.
            follow_up: Pushed by the assistant side (after a tool call): continues the answer.
        """
        if key in self._inferences:
            return
        turn: _Turn | None
        if speculative:
            turn = self._user_turn()
        elif follow_up and self._answering is not None:
            turn = self._answering
        elif self._answering is not None and not self._has_answer_inference(self._answering):
            turn = self._answering
        else:
            # A user still in their turn (a strategy that infers before it stops the turn), or
            # nobody: a greeting or an app-triggered inference, which belongs to no user turn.
            turn = self._open
        inference = _Inference(
            key=key,
            speculative=speculative,
            follow_up=follow_up,
            started_at=at,
            text=text,
            turn=turn,
        )
        if speculative:
            inference.spec_index = self._spec_count
            self._spec_count += 1
            self._ledger.speculation_started()
            self._pair_pending_strategy(inference)
        if turn is not None:
            turn.inferences.append(inference)
        self._inferences[key] = inference
        self._awaiting_llm.append(inference)
        _trim(self._inferences)
        del self._awaiting_llm[:-_MAX_TRACKED]

    def speculation_withdrawn(self, at: float, *, by_llm: bool = False):
        """A speculation was withdrawn (``EagerEndOfTurnCancelFrame``).

        Args:
            at: When the withdrawal was pushed.
            by_llm: The LLM service broadcast it itself, which it does only when a speculative
                inference wants a tool call (reason ``tool_call``).
        """
        target: _Inference | None = None
        if by_llm:
            for inference in self._llm_current.values():
                if inference.speculative and inference.resolved_at is None:
                    target = inference
        if target is None:
            target = self._latest_open_speculation(before=at)
        if target is None:
            return
        if by_llm and target.reason is None:
            target.reason = _TOOL_CALL
            target.reason_source = "frames"
        self._withdraw(target, at)

    def user_turn_committed(self, at: float, *, commit_unix: float | None = None):
        """The user turn was committed (``UserStoppedSpeakingFrame``).

        The open speculation, if any, is adopted: Pipecat's gate releases it on this very frame.

        Args:
            at: When the commit was pushed.
            commit_unix: Its wall-clock time, which anchors a turn that saw no VAD stop.
        """
        turn = self._user_turn()
        self._open = None
        if self._answering is not None:
            self._answering.interrupted = True
            self._close(self._answering, at, "superseded")
        self._close_resumed(turn, None)
        if turn.pause_stop_at is not None:
            turn.pauses.append(_pause_entry(turn, at, resumed=False))
            turn.pause_stop_at = None
        turn.committed_at = at
        turn.commit_unix = commit_unix
        turn.index = self._turns_committed
        self._turns_committed += 1
        self._answering = turn
        if self._watchdog is not None:
            self._watchdog.reset()
        for inference in reversed(turn.inferences):
            if inference.speculative and inference.resolved_at is None:
                inference.adopted_at = at
                self._ledger.speculation_adopted()
                self._events.append(
                    SpeculationResolved(
                        index=_spec_index(inference),
                        outcome="adopted",
                        reason=None,
                        summary=self._ledger.summary(),
                    )
                )
                self._maybe_readiness(inference)
                break

    def interruption(self, at: float):
        """An interruption (``InterruptionFrame``) cancelled whatever the bot was doing.

        Inferences without a first token are cancelled (a TTFB after this is the bogus one). An
        answering turn whose bot is not speaking is closed as interrupted; one whose bot is
        speaking waits for the transport to report that it stopped.
        """
        for inference in self._llm_current.values():
            if inference.first_token_at is None and inference.cancelled_at is None:
                inference.cancelled_at = at
        turn = self._answering
        if turn is None:
            return
        if not self._has_answer_inference(turn) and turn.bot_started_at is None:
            # The commit's inference may not be observed yet (the interruption is a system frame
            # and can overtake it); only an answer already under way can be interrupted.
            return
        turn.interrupted = True
        if not turn.speaking:
            self._close(turn, at, "interrupted")

    def rag(self, at: float, event: RagEvent):
        """Retrieval for the upcoming answer started, finished or was skipped.

        Goes to the open turn while the user is still in it, else to the answering turn.
        """
        if event not in ("start", "done", "skip"):
            raise ValueError(f"unknown RAG event {event!r}")
        turn = self._open or self._answering or self._user_turn()
        turn.rag.setdefault(event, at)

    # ------------------------------------------------------------- LLM side

    def llm_processing_started(self, at: float, *, llm: str, key: int):
        """The LLM service started processing a context frame (``on_process_frame``).

        Args:
            at: When processing started.
            llm: The service's name.
            key: The context frame's id. A frame rebuilt on the way (RAG) has a new id; it is then
                matched to the most recent inference still waiting for the LLM.
        """
        inference = self._inferences.get(key)
        if inference is None or inference.llm_started_at is not None:
            waiting = [i for i in self._awaiting_llm if i.llm_started_at is None]
            inference = waiting[-1] if waiting else None
        if inference is None:
            # A context nobody pushed where we could see it: still an inference.
            self.inference_started(at, key=key, speculative=False)
            inference = self._inferences[key]
        inference.llm = llm
        inference.llm_started_at = at
        self._awaiting_llm = [i for i in self._awaiting_llm if i.llm_started_at is None]
        self._llm_current[llm] = inference
        self._last_llm_inference = inference

    def llm_ttfb(self, at: float, *, llm: str, value_secs: float):
        """The LLM reported a TTFB metric: its first output, unless it is the bogus cancel one."""
        inference = self._llm_current.get(llm)
        if inference is None or value_secs <= 0:
            return
        if inference.cancelled_at is not None and at >= inference.cancelled_at:
            inference.ignored_ttfb_secs = value_secs
            self._ledger.ttfb_ignored()
            if inference.turn is not None:
                inference.turn.ignored_ttfb += 1
            return
        if inference.first_token_at is None:
            inference.first_token_at = at
            self._maybe_readiness(inference)

    def llm_usage(self, *, llm: str, prompt_tokens: int, completion_tokens: int):
        """The LLM reported token usage for the inference it is processing."""
        inference = self._llm_current.get(llm)
        if inference is None:
            return
        inference.prompt_tokens = (inference.prompt_tokens or 0) + prompt_tokens
        inference.completion_tokens = (inference.completion_tokens or 0) + completion_tokens
        if inference.withdrawn:
            self._ledger.add_wasted(prompt=prompt_tokens, completion=completion_tokens)

    # ------------------------------------------------------------- TTS side

    def first_sentence(self, at: float):
        """The TTS had its first complete sentence (text aggregation metric)."""
        inference = self._last_llm_inference
        if inference is None or inference.first_sentence_at is not None:
            return
        inference.first_sentence_at = at
        first_token = inference.first_token_at
        if first_token is None:
            return
        # A response the gate held from before the commit reaches the TTS all at once at the
        # release: its first-token-to-sentence time is the hold, not the aggregation. Any other
        # (ordinary, not held, or text let through before the commit) measures the aggregation.
        held = inference.adopted_at is not None and first_token < inference.adopted_at
        if not held:
            self._recent_first_sentence_secs = max(0.0, at - first_token)

    def tts_started(self, at: float, *, context_id: str | None):
        """The TTS opened an audio context (``TTSStartedFrame``)."""
        inference = self._tts_inference(context_id)
        if inference is None:
            return
        if context_id is not None:
            self._tts_contexts.setdefault(context_id, inference)
            _trim(self._tts_contexts)
        if inference.tts_started_at is None:
            inference.tts_started_at = at
        if self._watchdog is not None and self._answering is not None:
            self._watchdog.generation_started(context_id)

    def tts_stopped(self, at: float, *, context_id: str | None):
        """The TTS closed an audio context (``TTSStoppedFrame``): that answer's audio is all out."""
        if self._watchdog is not None:
            self._watchdog.generation_stopped(context_id)

    def tts_audio(self, at: float, *, context_id: str | None):
        """The TTS produced an audio chunk (first push of a ``TTSAudioRawFrame``)."""
        inference = self._tts_inference(context_id)
        if inference is None or inference.tts_first_audio_at is not None:
            return
        inference.tts_first_audio_at = at
        if inference.tts_started_at is not None:
            self._recent_tts_first_audio_secs = max(0.0, at - inference.tts_started_at)

    def tts_usage(self, *, characters: int):
        """The TTS reported characters synthesized (for its latest context's inference)."""
        inference = self._last_tts_inference or self._last_llm_inference
        if inference is None:
            return
        inference.tts_characters = (inference.tts_characters or 0) + characters
        if inference.withdrawn:
            self._ledger.add_wasted(characters=characters)

    # ---------------------------------------------------------- output side

    def audio_delivered(self, at: float, *, context_id: str | None, secs: float):
        """Audio reached the output transport.

        Args:
            at: When it was pushed into the output transport.
            context_id: Its TTS context id: one answer per distinct id.
            secs: Its duration.
        """
        key = context_id if context_id is not None else "<no context id>"
        turn = self._answering
        if turn is None:
            # Audio nobody is waiting for: more of an answer already counted (a pause long enough
            # for the transport to report it stopped), bot speech that answers no user turn (a
            # greeting, a reminder), or a response produced for the turn just closed, which is an
            # answer it should not have had. Only the last is a late answer.
            closed = self._last_closed
            owner = self._tts_contexts.get(context_id) if context_id is not None else None
            if (
                closed is not None
                and owner is not None
                and owner.turn is closed
                and key not in closed.answer_keys
            ):
                closed.answer_keys.add(key)
                self._ledger.late_answer()
                self._events.append(
                    LateAnswer(turn=closed.index if closed.index is not None else -1, key=key)
                )
            return
        turn.answer_keys.add(key)
        turn.audio_secs += secs
        if self._watchdog is not None:
            self._watchdog.add_audio(at, secs)

    def bot_started_speaking(self, at: float):
        """The output transport started playing (``BotStartedSpeakingFrame``)."""
        turn = self._answering
        if turn is None:
            return
        if turn.bot_started_at is None:
            turn.bot_started_at = at
        turn.speaking = True
        if self._watchdog is not None:
            self._watchdog.start(at)

    def bot_stopped_speaking(self, at: float):
        """The output transport finished playing (``BotStoppedSpeakingFrame``): the turn is done."""
        turn = self._answering
        if turn is None or not turn.speaking:
            return
        turn.speaking = False
        turn.bot_stopped_at = at
        self._close(turn, at, "interrupted" if turn.interrupted else "playback_done")

    def poll(self, now: float) -> bool:
        """Fire the playback watchdog if its deadline passed.

        Returns:
            Whether it fired (the turn was closed, see :meth:`drain`).
        """
        turn = self._answering
        if self._watchdog is None or turn is None or not self._watchdog.expired(now):
            return False
        started = self._watchdog.started_at
        self._close(
            turn,
            now,
            "playback_watchdog",
            watchdog_waited=now - started if started is not None else None,
        )
        return True

    def session_ended(self, at: float):
        """The session ended (``EndFrame``/``CancelFrame``): close the answering turn."""
        if self._answering is not None:
            self._close(self._answering, at, "session_end")
        self._open = None

    # ------------------------------------------------- strategy annotations

    def annotate_speculation_started(
        self, *, strategy_id: int, text: str, delay_secs: float, backed_off: bool = False
    ):
        """The strategy reported a speculation it started (``on_speculation_started``).

        Paired with the observed speculative inference carrying the same text, oldest first,
        waiting for it if its frame has not been observed yet. Its delay is the session's
        debounce unless it was backed off within its turn.
        """
        if not backed_off:
            self._ledger.debounce_observed(delay_secs)
        if strategy_id in self._by_strategy_id:
            return
        for turn in (self._open, self._answering):
            if turn is None:
                continue
            for inference in turn.inferences:
                if (
                    inference.speculative
                    and inference.strategy_id is None
                    and _same_text(inference.text, text)
                ):
                    self._bind_strategy(inference, strategy_id, delay_secs)
                    return
        self._pending_strategy.append((strategy_id, text, delay_secs))

    def annotate_speculation_withdrawn(self, *, strategy_id: int, reason: str | None):
        """The strategy reported why it withdrew a speculation (``on_speculation_withdrawn``).

        Only the reason is taken: the outcome and its time come from the frames.
        """
        if reason is None:
            return
        inference = self._by_strategy_id.get(strategy_id)
        if inference is None:
            self._pending_reasons[strategy_id] = reason
            return
        self._set_reason(inference, reason)

    def annotate_speculation_ready(self, *, strategy_id: int, secs: float):
        """The strategy reported how long a speculation took to have its answer ready.

        From its start to its ``ready_at`` (the stage the held commit waits for), with its
        adoption or withdrawal.
        """
        inference = self._by_strategy_id.get(strategy_id)
        if inference is None:
            self._pending_ready[strategy_id] = secs
            while len(self._pending_ready) > _MAX_PENDING_REPORTS:
                del self._pending_ready[next(iter(self._pending_ready))]
            return
        inference.ready_secs = max(0.0, secs)

    def annotate_commit(self, *, text: str):
        """The strategy reported the committed text (``on_user_turn_committed``)."""
        turn = self._answering if self._open is None else self._open
        if turn is not None:
            turn.commit_text = text

    def debounce_changed(self, entry: DebounceEntry):
        """The strategy changed the speculation delay."""
        self._ledger.debounce_changed(entry)

    @property
    def turns_committed(self) -> int:
        """Turns committed so far."""
        return self._turns_committed

    def warmup(self, entry: WarmupEntry):
        """A connection warmup was timed."""
        self._ledger.warmup(entry)

    def tuning(self, **settings: float | None):
        """The strategy's settings (``SessionSummary`` tuning fields), for what-if replays."""
        self._ledger.tuning(**settings)

    # -------------------------------------------------------------- helpers

    def _user_turn(self) -> _Turn:
        if self._open is None:
            self._open = _Turn()
        return self._open

    @staticmethod
    def _close_resumed(turn: _Turn, speech_end: float | None):
        """Close the pause the resumed speech ended, at the end of that speech (None: unknown)."""
        entry, resumed_at = turn.resumed, turn.resumed_at
        if entry is None or resumed_at is None:
            return
        if speech_end is not None:
            entry.speech_ms = _ms(max(0.0, speech_end - resumed_at))
        if turn.words_at is not None:
            entry.words_ms = _ms(max(0.0, turn.words_at - resumed_at))
        turn.pauses.append(entry)
        turn.resumed = None
        turn.resumed_at = None
        turn.words_at = None

    @staticmethod
    def _has_answer_inference(turn: _Turn) -> bool:
        return any(not i.withdrawn for i in turn.inferences)

    def _latest_open_speculation(self, *, before: float) -> _Inference | None:
        for turn in (self._open, self._answering):
            if turn is None:
                continue
            for inference in reversed(turn.inferences):
                if (
                    inference.speculative
                    and inference.resolved_at is None
                    and inference.started_at <= before
                ):
                    return inference
        return None

    def _withdraw(self, inference: _Inference, at: float):
        inference.withdrawn_at = at
        if inference.cancelled_at is None:
            inference.cancelled_at = at
        self._ledger.speculation_withdrawn(
            counts_toward_cancel_rate=inference.counts_toward_cancel_rate
        )
        self._ledger.add_wasted(
            prompt=inference.prompt_tokens or 0,
            completion=inference.completion_tokens or 0,
            characters=inference.tts_characters or 0,
        )
        self._events.append(
            SpeculationResolved(
                index=_spec_index(inference),
                outcome="withdrawn",
                reason=inference.reason,
                summary=self._ledger.summary(),
            )
        )
        self._maybe_readiness(inference)

    def _set_reason(self, inference: _Inference, reason: str):
        before = inference.counts_toward_cancel_rate
        inference.reason = reason
        inference.reason_source = "strategy"
        if inference.withdrawn and before != inference.counts_toward_cancel_rate:
            self._ledger.reclassify_withdrawal(
                counts_toward_cancel_rate=inference.counts_toward_cancel_rate
            )

    def _bind_strategy(self, inference: _Inference, strategy_id: int, delay_secs: float):
        inference.strategy_id = strategy_id
        inference.delay_secs = delay_secs
        self._by_strategy_id[strategy_id] = inference
        _trim(self._by_strategy_id)
        reason = self._pending_reasons.pop(strategy_id, None)
        if reason is not None:
            self._set_reason(inference, reason)
        ready = self._pending_ready.pop(strategy_id, None)
        if ready is not None:
            inference.ready_secs = max(0.0, ready)

    def _pair_pending_strategy(self, inference: _Inference):
        for n, (strategy_id, text, delay_secs) in enumerate(self._pending_strategy):
            if _same_text(inference.text, text):
                del self._pending_strategy[n]
                self._bind_strategy(inference, strategy_id, delay_secs)
                return

    def _tts_inference(self, context_id: str | None) -> _Inference | None:
        inference = self._tts_contexts.get(context_id) if context_id is not None else None
        if inference is None:
            inference = self._last_llm_inference
        if inference is not None:
            self._last_tts_inference = inference
        return inference

    def _maybe_readiness(self, inference: _Inference):
        if (
            not inference.speculative
            or inference.readiness_emitted
            or inference.first_token_at is None
            or inference.resolved_at is None
        ):
            return
        resolved = inference.resolved_at
        llm_secs = max(0.0, inference.first_token_at - inference.started_at)
        own = (
            inference.tts_first_audio_at is not None
            and inference.tts_started_at is not None
            and inference.tts_first_audio_at <= resolved
        )
        if own:
            assert inference.tts_first_audio_at is not None and inference.tts_started_at is not None
            tts_secs = max(0.0, inference.tts_first_audio_at - inference.tts_started_at)
            sentence_secs = (
                max(0.0, inference.first_sentence_at - inference.first_token_at)
                if inference.first_sentence_at is not None
                else None
            )
        else:
            if self._recent_tts_first_audio_secs is None:
                return
            tts_secs = self._recent_tts_first_audio_secs
            sentence_secs = self._recent_first_sentence_secs
        if sentence_secs is None:
            # Never a guess: leaving the first sentence out made the free-patience commit rule
            # believe answers were ready ~0.7 s sooner than they were, and commit inside pauses.
            return
        inference.readiness_emitted = True
        self._events.append(
            AnswerReadiness(
                index=_spec_index(inference),
                secs=llm_secs + sentence_secs + tts_secs,
                llm_first_token_secs=llm_secs,
                first_sentence_secs=sentence_secs,
                tts_first_audio_secs=tts_secs,
                own_tts=own,
            )
        )

    def _close(
        self,
        turn: _Turn,
        at: float,
        completion: str,
        *,
        watchdog_waited: float | None = None,
    ):
        if turn is self._answering:
            self._answering = None
            if self._watchdog is not None:
                self._watchdog.reset()
        previous = self._last_closed
        if previous is not None:
            # Only the latest closed turn can still get a late answer: forget the contexts of
            # the one before, so a long session does not keep every context id.
            self._tts_contexts = {
                c: i for c, i in self._tts_contexts.items() if i.turn is not previous
            }
        self._last_closed = turn
        record = _build_record(
            turn,
            session_id=self._session_id,
            completion=completion,
            watchdog_waited=watchdog_waited,
        )
        self._ledger.turn_completed(
            answers=record.answers,
            watchdog_fired=record.playback_watchdog_fired,
            withdrawn_without_usage=record.withdrawn_without_usage,
        )
        # Inferences of a closed turn no longer wait for the LLM, nor for strategy reports.
        self._awaiting_llm = [i for i in self._awaiting_llm if i.turn is not turn]
        for inference in turn.inferences:
            self._inferences.pop(inference.key, None)
            if inference.strategy_id is not None:
                self._by_strategy_id.pop(inference.strategy_id, None)
        # Reports the frames never matched (a strategy whose speculations were not observed)
        # must not pile up over a long session.
        del self._pending_strategy[:-_MAX_PENDING_REPORTS]
        while len(self._pending_reasons) > _MAX_PENDING_REPORTS:
            del self._pending_reasons[next(iter(self._pending_reasons))]
        self._events.append(TurnCompleted(record=record, summary=self._ledger.summary()))


def _pause_entry(turn: _Turn, end: float, *, resumed: bool) -> PauseEntry:
    """The pause from the turn's VAD stop to ``end``, with the final transcript it brought."""
    assert turn.pause_stop_at is not None
    final, turn.pause_final = turn.pause_final, None
    return PauseEntry(
        silence_ms=_ms(max(0.0, end - turn.pause_stop_at)),
        resumed=resumed,
        final_ms=_ms(final[0]) if final is not None else None,
        final_matched=final[1] if final is not None else None,
    )


def _trim(tracked: dict) -> None:
    """Drop the oldest entries (dicts keep insertion order) beyond ``_MAX_TRACKED``."""
    while len(tracked) > _MAX_TRACKED:
        del tracked[next(iter(tracked))]


def _spec_index(inference: _Inference) -> int:
    return inference.spec_index if inference.spec_index is not None else -1


def _same_text(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def _ms(secs: float) -> float:
    return round(secs * 1000.0, 3)


def _build_record(
    turn: _Turn,
    *,
    session_id: str,
    completion: str,
    watchdog_waited: float | None,
) -> TurnRecord:
    """Turn the collected moments into a record: moments → stages → speculations → waste.

    Every time is relative to the turn's anchor and clamped at 0; what was clamped is listed in
    the record (see :mod:`pipecat_speculative.metrics.turn_record`).
    """
    clock = _RecordClock(turn.t0 if turn.t0 is not None else turn.committed_at)
    answer = _pick_answer(turn)
    at = _moments_at(turn, answer)
    moments = {name: clock.moment(f"moment:{name}", value) for name, value in at.items()}
    stages = _stages(at, turn.t0, clock)
    speculations = _speculation_entries(turn, clock)
    waste = _waste(turn)
    user_text = turn.commit_text
    if user_text is None and answer.answer is not None:
        user_text = answer.answer.text

    return TurnRecord(
        session_id=session_id,
        turn=turn.index if turn.index is not None else -1,
        anchor="end_of_speech" if turn.t0 is not None else "commit",
        anchor_unix=turn.t0_unix if turn.t0 is not None else turn.commit_unix,
        vad_stop_secs=turn.stop_secs,
        user_text=user_text,
        speculative=answer.adopted is not None,
        moments_ms=moments,
        stages_ms=stages,
        clamped=clock.clamped,
        speculations=speculations,
        speculations_started=len(speculations),
        speculations_adopted=sum(1 for s in speculations if s.outcome == "adopted"),
        speculations_withdrawn=sum(1 for s in speculations if s.outcome == "withdrawn"),
        wasted_prompt_tokens=waste.prompt_tokens,
        wasted_completion_tokens=waste.completion_tokens,
        wasted_tts_characters=waste.tts_characters,
        withdrawn_without_usage=waste.without_usage,
        prompt_tokens=_known_sum([i.prompt_tokens for i in answer.live]),
        completion_tokens=_known_sum([i.completion_tokens for i in answer.live]),
        tts_characters=_known_sum([i.tts_characters for i in answer.live]),
        answers=len(turn.answer_keys),
        audio_secs=round(turn.audio_secs, 4) if turn.answer_keys else None,
        interrupted=turn.interrupted,
        completion=completion,
        playback_watchdog_fired=completion == "playback_watchdog",
        watchdog_waited_secs=round(watchdog_waited, 4) if watchdog_waited is not None else None,
        ignored_ttfb=turn.ignored_ttfb,
        pauses=list(turn.pauses),
        speech_after_commit_ms=(
            _ms(max(0.0, turn.speech_after_commit_at - turn.committed_at))
            if turn.speech_after_commit_at is not None and turn.committed_at is not None
            else None
        ),
        first_speech_ms=_ms(turn.first_speech_secs) if turn.first_speech_secs is not None else None,
        first_words_ms=(
            _ms(max(0.0, turn.first_words_at - turn.first_speech_at))
            if turn.first_words_at is not None and turn.first_speech_at is not None
            else None
        ),
    )


class _RecordClock:
    """Times relative to a turn's anchor, in ms, clamped at 0; remembers what it clamped."""

    def __init__(self, anchor_at: float | None):
        self.anchor_at = anchor_at
        self.clamped: dict[str, float] = {}

    def moment(self, name: str, at: float | None) -> float | None:
        """``at`` relative to the anchor; None when either is unknown."""
        if at is None or self.anchor_at is None:
            return None
        return self._clamp(name, _ms(at - self.anchor_at))

    def span(self, name: str, start: float | None, end: float | None) -> float | None:
        """``end - start``; None when either is unknown. Clamped values are listed as ``stage:``."""
        if start is None or end is None:
            return None
        return self._clamp(f"stage:{name}", _ms(end - start))

    def _clamp(self, key: str, value: float) -> float:
        if value < 0:
            self.clamped[key] = value
            return 0.0
        return value


@dataclass(frozen=True)
class _Answer:
    """Which inferences of a turn answered it.

    Parameters:
        live: Inferences not withdrawn.
        adopted: The adopted speculation, if any.
        answer: The inference whose LLM timings the record reports: the adopted speculation,
            else the ordinary inference (not a follow-up), else the first live one.
        speaking: The inference whose TTS timings the record reports: the first live one that
            produced audio, else ``answer``.
    """

    live: list[_Inference]
    adopted: _Inference | None
    answer: _Inference | None
    speaking: _Inference | None


def _pick_answer(turn: _Turn) -> _Answer:
    live = [i for i in turn.inferences if not i.withdrawn]
    adopted = next((i for i in live if i.adopted_at is not None), None)
    answer = adopted or next((i for i in live if not i.speculative and not i.follow_up), None)
    if answer is None and live:
        answer = live[0]
    speaking = next((i for i in live if i.tts_first_audio_at is not None), answer)
    return _Answer(live, adopted, answer, speaking)


def _moments_at(turn: _Turn, answer: _Answer) -> dict[str, float | None]:
    """The turn's moments on the pipeline clock (absolute seconds), in :data:`MOMENTS` order."""
    llm, tts = answer.answer, answer.speaking
    return {
        "vad_stop": turn.vad_stop_at,
        "commit": turn.committed_at,
        "rag_start": turn.rag.get("start"),
        "rag_done": turn.rag.get("done"),
        "rag_skip": turn.rag.get("skip"),
        "llm_request": llm.llm_started_at if llm else None,
        "llm_first_token": llm.first_token_at if llm else None,
        "first_sentence": tts.first_sentence_at if tts else None,
        "tts_request": tts.tts_started_at if tts else None,
        "tts_first_audio": tts.tts_first_audio_at if tts else None,
        "bot_started_speaking": turn.bot_started_at,
        "bot_stopped_speaking": turn.bot_stopped_at,
    }


# Each stage: (name, start moment, end moment); "t0" is the real end of speech.
_STAGE_SPANS: tuple[tuple[str, str, str], ...] = (
    ("speech_to_llm_start", "t0", "llm_request"),
    ("llm_first_token", "llm_request", "llm_first_token"),
    ("first_sentence", "llm_first_token", "first_sentence"),
    ("llm_to_tts_start", "first_sentence", "tts_request"),
    ("tts_first_audio", "tts_request", "tts_first_audio"),
    ("playout", "tts_first_audio", "bot_started_speaking"),
    ("total", "t0", "bot_started_speaking"),
    ("turn_detection", "t0", "commit"),
    ("after_commit", "commit", "bot_started_speaking"),
    ("rag", "rag_start", "rag_done"),
    ("playback", "bot_started_speaking", "bot_stopped_speaking"),
)


def _stages(
    at: dict[str, float | None], t0: float | None, clock: _RecordClock
) -> dict[str, float | None]:
    """The stages between moments; those measured from t0 are None in a turn without one."""
    times = {**at, "t0": t0}
    return {name: clock.span(name, times[start], times[end]) for name, start, end in _STAGE_SPANS}


def _speculation_entries(turn: _Turn, clock: _RecordClock) -> list[SpeculationEntry]:
    """One entry per speculative inference of the turn, in start order."""
    entries: list[SpeculationEntry] = []
    for inference in (i for i in turn.inferences if i.speculative):
        entries.append(_speculation_entry(inference, len(entries), clock))
    return entries


def _speculation_entry(inference: _Inference, n: int, clock: _RecordClock) -> SpeculationEntry:
    if inference.adopted_at is not None:
        outcome = "adopted"
    elif inference.withdrawn:
        outcome = "withdrawn"
    else:
        outcome = "open"
    first_token = None
    if inference.first_token_at is not None:
        first_token = clock.span(
            f"speculation[{n}].llm_first_token", inference.started_at, inference.first_token_at
        )
    ignored = inference.ignored_ttfb_secs
    return SpeculationEntry(
        index=_spec_index(inference),
        strategy_id=inference.strategy_id,
        text=inference.text,
        started_ms=clock.moment(f"speculation[{n}].started", inference.started_at),
        resolved_ms=clock.moment(f"speculation[{n}].resolved", inference.resolved_at),
        outcome=outcome,
        reason=inference.reason,
        reason_source=inference.reason_source,
        counts_toward_cancel_rate=inference.counts_toward_cancel_rate,
        delay_secs=inference.delay_secs,
        llm_first_token_ms=first_token,
        prompt_tokens=inference.prompt_tokens,
        completion_tokens=inference.completion_tokens,
        tts_characters=inference.tts_characters,
        ignored_ttfb_ms=_ms(ignored) if ignored is not None else None,
        ready_ms=_ms(inference.ready_secs) if inference.ready_secs is not None else None,
    )


@dataclass(frozen=True)
class _Waste:
    """What withdrawn speculations of a turn consumed.

    Parameters:
        prompt_tokens: Prompt tokens reported for them.
        completion_tokens: Completion tokens reported for them.
        tts_characters: Characters sent to TTS for them.
        without_usage: Withdrawn ones whose service reported no usage (their cost is unknown,
            not zero).
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    tts_characters: int = 0
    without_usage: int = 0


def _waste(turn: _Turn) -> _Waste:
    withdrawn = [i for i in turn.inferences if i.speculative and i.withdrawn]
    return _Waste(
        prompt_tokens=sum(i.prompt_tokens or 0 for i in withdrawn),
        completion_tokens=sum(i.completion_tokens or 0 for i in withdrawn),
        tts_characters=sum(i.tts_characters or 0 for i in withdrawn),
        without_usage=sum(1 for i in withdrawn if i.prompt_tokens is None),
    )


def _known_sum(values: list[int | None]) -> int | None:
    """The sum of the known values; None when none is known (never a 0 that means unknown)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None
