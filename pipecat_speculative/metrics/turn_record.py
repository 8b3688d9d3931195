"""What the turn timing observer reports: one record per user turn, one summary per session.

These dataclasses are the JSONL schema (``SCHEMA_VERSION``), the payload of the observer's events
and what every sink receives. They are plain data: the timing logic lives in
:mod:`pipecat_speculative.metrics.turn_timeline`.

Clock and units:

- Every time in a record is in milliseconds, relative to the turn's **anchor**. The anchor is t0,
  the real end of speech (VAD stop minus the VAD's ``stop_secs``), whenever a VAD stop was seen in
  the turn (``anchor == "end_of_speech"``). A turn committed without any VAD stop (an STT that
  decides turns on its own and no local VAD) is anchored at its commit (``anchor == "commit"``);
  the stages measured from t0 are then None rather than measured from something else.
- All moments come from one monotonic clock (the pipeline clock). ``anchor_unix`` only places the
  record in wall-clock time for people and for tracing; no duration is computed from it.
- A moment or stage is never negative. One that would be (a RAG prefetch that started before the
  user finished, a speculation from an earlier pause of the same turn, two moments observed out of
  order) is clamped to 0 and listed in ``clamped`` with its unclamped value, so nothing is hidden.
- A value that could not be observed is None, never a guess. Token and character counts are None
  when the service did not report them (an OpenAI stream cancelled before its final usage chunk
  reports none), and 0 only when it reported 0.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

__all__ = [
    "HISTORY_LIMIT",
    "MOMENTS",
    "SCHEMA_NAME",
    "SCHEMA_VERSION",
    "STAGES",
    "DebounceEntry",
    "NewerSchemaError",
    "PauseEntry",
    "RecordError",
    "SessionSummary",
    "SpeculationEntry",
    "TurnRecord",
    "WarmupEntry",
]

SCHEMA_NAME = "pipecat-speculative/turn-timing"
"""Value of the ``schema`` field of every JSONL line."""

SCHEMA_VERSION = 1

"""Bumped on any change a reader could notice (a removed or renamed field, a changed meaning).
Added optional fields do not bump it; readers must ignore fields they do not know."""

HISTORY_LIMIT = 100
"""Most entries a session summary keeps in each of its history lists (the latest ones)."""


class RecordError(ValueError):
    """A JSONL line that claims to be a record of this schema but cannot be read as one.

    Parameters:
        field: The offending field (``speculations[1].outcome`` for a nested one), or None when
            the problem is the record as a whole.
        problem: What is wrong with it.
    """

    def __init__(self, field: str | None, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"field {field!r}: {problem}" if field else problem)


class NewerSchemaError(RecordError):
    """A record written by a newer version of the schema than this reader knows.

    Parameters:
        version: The record's ``schema_version``.
    """

    def __init__(self, version: int):
        self.version = version
        super().__init__(
            "schema_version",
            f"written with schema version {version}, newer than the {SCHEMA_VERSION} this "
            "version of pipecat-speculative reads: upgrade pipecat-speculative to read it",
        )


MOMENTS: tuple[str, ...] = (
    "vad_stop",
    "commit",
    "rag_start",
    "rag_done",
    "rag_skip",
    "llm_request",
    "llm_first_token",
    "first_sentence",
    "tts_request",
    "tts_first_audio",
    "bot_started_speaking",
    "bot_stopped_speaking",
)
"""Moments of a turn, each in ms from the anchor (None if not observed).

- ``vad_stop``: the VAD decided speech had ended (t0 + stop_secs).
- ``commit``: the turn was decided over (``UserStoppedSpeakingFrame``).
- ``rag_start`` / ``rag_done`` / ``rag_skip``: retrieval for the answer, when reported.
- ``llm_request``: the LLM service started processing the answering inference's context
  (includes any wait in the LLM's queue; for an adopted speculation this is before the commit).
- ``llm_first_token``: the LLM's first output for that inference (its TTFB metric, which is a
  system frame and so passes the speculation gate when it happens, not at release).
- ``first_sentence``: the TTS had its first complete sentence (its text aggregation metric).
- ``tts_request``: the TTS opened the audio context for it (``TTSStartedFrame``).
- ``tts_first_audio``: the TTS produced the first audio chunk (its first ``TTSAudioRawFrame``).
- ``bot_started_speaking``: the output transport started playing (``BotStartedSpeakingFrame``).
- ``bot_stopped_speaking``: the output transport finished playing (``BotStoppedSpeakingFrame``).
"""

STAGES: tuple[str, ...] = (
    "speech_to_llm_start",
    "llm_first_token",
    "first_sentence",
    "llm_to_tts_start",
    "tts_first_audio",
    "playout",
    "total",
    "turn_detection",
    "after_commit",
    "rag",
    "playback",
)
"""Derived durations of a turn in ms (None when either end is unknown).

The first six tile ``total`` when every moment is known and in order:

- ``speech_to_llm_start``: t0 → ``llm_request``.
- ``llm_first_token``: ``llm_request`` → ``llm_first_token``.
- ``first_sentence``: ``llm_first_token`` → ``first_sentence``. When the speculation gate held an
  adopted response until the commit, this includes that hold (the text reached the TTS at the
  commit); compare ``commit``.
- ``llm_to_tts_start``: ``first_sentence`` → ``tts_request``. Measured from the first sentence,
  not from the end of the LLM stream (which is what made the reference log print -93 ms).
- ``tts_first_audio``: ``tts_request`` → ``tts_first_audio``.
- ``playout``: ``tts_first_audio`` → ``bot_started_speaking`` (transport buffering, and any hold
  of speculative audio after the TTS until the commit).
- ``total``: t0 → ``bot_started_speaking``: real end of speech to first bot audio, the headline.

Two more split ``total`` at the commit instead:

- ``turn_detection``: t0 → ``commit``.
- ``after_commit``: ``commit`` → ``bot_started_speaking``, what speculation shortens.

And two that stand alone: ``rag`` (``rag_start`` → ``rag_done``) and ``playback``
(``bot_started_speaking`` → ``bot_stopped_speaking``).
"""


@dataclass
class SpeculationEntry:
    """One speculative inference of a turn, with its outcome and the work it cost.

    Parameters:
        index: Session-wide sequence number of speculative inferences seen by the observer.
        strategy_id: The strategy's ``SpeculationRecord.id``, when a strategy is attached.
        text: The user text it answered (from the context frame, or the strategy's record).
        started_ms: When its context frame was pushed, ms from the anchor.
        resolved_ms: When it was adopted (the commit) or withdrawn, ms from the anchor.
        outcome: ``"adopted"``, ``"withdrawn"`` or ``"open"`` (the turn ended without either).
        reason: The withdrawal reason (a ``WithdrawalReason`` value), None if adopted or unknown.
        reason_source: ``"strategy"`` (from its event) or ``"frames"`` (a withdrawal broadcast
            by the LLM service itself is a tool call), None when unknown.
        counts_toward_cancel_rate: Whether a withdrawal says the guess was wrong (False for tool
            calls and for anything not withdrawn).
        delay_secs: The speculation delay (debounce) in force when it started, from the strategy.
        llm_first_token_ms: Its LLM time to first token, from its context push (so it includes
            queueing at the LLM). None if withdrawn before its first token.
        prompt_tokens: Prompt tokens the LLM reported for it.
        completion_tokens: Completion tokens the LLM reported for it.
        tts_characters: Characters the TTS reported synthesizing for it.
        ignored_ttfb_ms: The bogus TTFB the LLM emitted when it was cancelled, ignored (ms).
        ready_ms: From its start until the strategy was told its answer was ready (its
            ``SpeculationRecord.ready_at``: the first sentence by default), ms. A duration, not a
            moment. None when it was resolved before that, or no strategy is attached.
    """

    index: int
    strategy_id: int | None = None
    text: str | None = None
    started_ms: float | None = None
    resolved_ms: float | None = None
    outcome: str = "open"
    reason: str | None = None
    reason_source: str | None = None
    counts_toward_cancel_rate: bool = False
    delay_secs: float | None = None
    llm_first_token_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tts_characters: int | None = None
    ignored_ttfb_ms: float | None = None
    ready_ms: float | None = None


@dataclass
class PauseEntry:
    """One pause of a user turn: a VAD stop, and what ended the silence.

    Durations only (ms), all on the pipeline clock, so none is ever negative.

    Parameters:
        silence_ms: VAD stop → the VAD start of resumed speech (``resumed``), or → the commit
            (the turn's last pause; the user may have stayed silent longer, the commit ended
            the measurement).
        resumed: True when the user spoke again before the commit (possibly a blip: see
            ``words_ms``), False for the pause the commit ended.
        speech_ms: The resumed speech: VAD start → the next VAD stop. None for the last pause,
            or when the commit came while the user was speaking.
        words_ms: VAD start → the first transcript (interim or final) after it, None when no
            words came before the next VAD stop (a cough, a click: the speculative strategy
            keeps its speculation through such a blip).
        final_ms: VAD stop → the final transcript of the speech before the pause, when it came
            during the pause (an STT finalizing on the VAD stop); None when it came before.
        final_matched: Whether that final said what the latest interim before it said (case
            and punctuation aside: what decides whether a speculation on the interim
            survives it); None when no interim preceded it.
    """

    silence_ms: float
    resumed: bool
    speech_ms: float | None = None
    words_ms: float | None = None
    final_ms: float | None = None
    final_matched: bool | None = None


@dataclass
class TurnRecord:
    """Everything measured about one user turn, from end of speech to the end of the answer.

    Parameters:
        session_id: The observer's session id.
        turn: 0-based index of the committed turn in the session.
        anchor: ``"end_of_speech"`` (t0) or ``"commit"``; see the module docstring.
        anchor_unix: Wall-clock time of the anchor (seconds since the epoch), for display and
            tracing only.
        vad_stop_secs: The VAD ``stop_secs`` the turn's VAD stop carried.
        user_text: The committed user text (from the strategy's commit, else the answering
            context's last user message).
        speculative: Whether the answer came from an adopted speculation.
        moments_ms: See :data:`MOMENTS`.
        stages_ms: See :data:`STAGES`.
        clamped: Names (``"moment:x"``, ``"stage:x"``, ``"speculation[i].started"``) of values
            clamped to 0, with their unclamped (negative) value in ms.
        speculations: Every speculative inference started during the turn, in order.
        speculations_started: ``len(speculations)``.
        speculations_adopted: How many were adopted (0 or 1).
        speculations_withdrawn: How many were withdrawn.
        wasted_prompt_tokens: Prompt tokens reported for withdrawn speculations.
        wasted_completion_tokens: Completion tokens reported for withdrawn speculations.
        wasted_tts_characters: TTS characters reported for withdrawn speculations.
        withdrawn_without_usage: Withdrawn speculations the LLM reported no usage for (an OpenAI
            stream cancelled before its final chunk): their waste is unknown, not 0.
        prompt_tokens: Prompt tokens of the answer's inference(s).
        completion_tokens: Completion tokens of the answer's inference(s).
        tts_characters: TTS characters of the answer.
        answers: Distinct responses (TTS contexts) whose audio reached the output transport
            during the turn. A committed turn should have exactly 1; 0 is a silent bot, 2 a stale
            answer spoken next to the fresh one.
        audio_secs: Seconds of answer audio delivered to the output transport.
        interrupted: The user interrupted the answer (or the turn was superseded).
        completion: How the record was closed: ``"playback_done"``, ``"playback_watchdog"``,
            ``"interrupted"``, ``"superseded"`` or ``"session_end"``.
        playback_watchdog_fired: Playback never reported finishing within the audio's duration
            plus the margin; ``watchdog_waited_secs`` says how long was waited.
        watchdog_waited_secs: Seconds from bot started speaking to the watchdog firing.
        ignored_ttfb: How many bogus cancellation TTFBs were ignored in the turn.
        pauses: Every pause of the turn, in order, the last one ended by the commit. None in a
            record written before pauses were recorded (an older file), [] when no VAD stop was
            seen (an STT that ends turns itself).
        speech_after_commit_ms: Commit → the first VAD start after it, while this record was
            open. Shorter than the strategy's ``cut_in_secs`` (1 s) means the commit cut the
            user off: they went on after it.
        first_speech_ms: The turn's first speech, VAD start → VAD stop.
        first_words_ms: The turn's first VAD start → its first transcript (interim or final).
    """

    session_id: str
    turn: int
    anchor: str = "end_of_speech"
    anchor_unix: float | None = None
    vad_stop_secs: float | None = None
    user_text: str | None = None
    speculative: bool = False
    moments_ms: dict[str, float | None] = field(default_factory=dict)
    stages_ms: dict[str, float | None] = field(default_factory=dict)
    clamped: dict[str, float] = field(default_factory=dict)
    speculations: list[SpeculationEntry] = field(default_factory=list)
    speculations_started: int = 0
    speculations_adopted: int = 0
    speculations_withdrawn: int = 0
    wasted_prompt_tokens: int = 0
    wasted_completion_tokens: int = 0
    wasted_tts_characters: int = 0
    withdrawn_without_usage: int = 0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tts_characters: int | None = None
    answers: int = 0
    audio_secs: float | None = None
    interrupted: bool = False
    completion: str = "playback_done"
    playback_watchdog_fired: bool = False
    watchdog_waited_secs: float | None = None
    ignored_ttfb: int = 0
    pauses: list[PauseEntry] | None = None
    speech_after_commit_ms: float | None = None
    first_speech_ms: float | None = None
    first_words_ms: float | None = None

    def stage(self, name: str) -> float | None:
        """A derived stage in ms, None if unknown."""
        return self.stages_ms.get(name)

    def moment(self, name: str) -> float | None:
        """A moment in ms from the anchor, None if unknown."""
        return self.moments_ms.get(name)

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form: schema header, then every field (JSON types only)."""
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "record": "turn",
            **asdict(self),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TurnRecord:
        """Rebuild a record from its JSONL form, ignoring fields this version does not know.

        Raises:
            ValueError: If the line is not a turn record of a schema version this code reads.
        """
        _check_header(data, "turn")
        values = _known_values(cls, data, "")
        values["speculations"] = [
            SpeculationEntry(**_known_values(SpeculationEntry, s, f"speculations[{i}]."))
            for i, s in enumerate(_list_field(values, "speculations"))
        ]
        if values.get("pauses") is not None:
            values["pauses"] = [
                PauseEntry(**_known_values(PauseEntry, p, f"pauses[{i}]."))
                for i, p in enumerate(_list_field(values, "pauses"))
            ]
        return cls(**values)


@dataclass(frozen=True)
class DebounceEntry:
    """A change of the speculation delay, as reported by the strategy.

    Parameters:
        at_turn: Turns committed in the session when the change was reported.
        old_secs: Delay before the change.
        new_secs: Delay after the change.
        reason: The debounce's reason, with its numbers.
        window_cancel_rate: Cancellation rate over the window that triggered it.
        samples: Outcomes in that window.
    """

    at_turn: int
    old_secs: float
    new_secs: float
    reason: str
    window_cancel_rate: float
    samples: int


@dataclass(frozen=True)
class WarmupEntry:
    """One connection warmup.

    Parameters:
        service: Which service (its name).
        secs: How long the warmup took.
        ok: Whether it succeeded.
    """

    service: str
    secs: float
    ok: bool


@dataclass
class SessionSummary:
    """Speculation accounting and session facts, over the whole session so far.

    Rates are None until there is something to divide by.

    Parameters:
        session_id: The observer's session id.
        turns: Turns completed.
        answered_turns: Turns with at least one answer.
        multi_answer_turns: Turns with more than one answer.
        speculations_started: Speculative inferences started.
        speculations_adopted: Adopted at commit.
        speculations_withdrawn: Withdrawn for any reason.
        tool_call_withdrawals: Withdrawn because the inference wanted a tool call.
        cancel_rate: Withdrawn (excluding tool calls) / resolved (excluding tool calls).
        window_cancel_rate: The same over the last ``window`` counted outcomes.
        window: Size of that window.
        window_samples: Outcomes in it.
        hit_rate: Adopted / resolved.
        wasted_prompt_tokens: Prompt tokens reported for withdrawn speculations.
        wasted_completion_tokens: Completion tokens reported for withdrawn speculations.
        wasted_tts_characters: TTS characters reported for withdrawn speculations.
        withdrawn_without_usage: Withdrawn speculations of closed turns with no usage reported.
        ignored_ttfb: Bogus cancellation TTFBs ignored.
        playback_watchdog_fired: Turns closed by the playback watchdog.
        late_answers: Answers whose audio reached the output after their turn was closed.
        debounce_secs: Current speculation delay, if the strategy reported one.
        debounce_history: The latest changes of the speculation delay, oldest first (at most
            ``HISTORY_LIMIT``: a session must not grow without bound; ``debounce_changes``
            counts them all).
        warmups: The latest warmups recorded, oldest first (at most ``HISTORY_LIMIT``;
            ``warmups_recorded`` counts them all).
        debounce_changes: Changes of the speculation delay in the whole session.
        warmups_recorded: Warmups recorded in the whole session.
        debounce_initial_secs: The speculation delay the strategy started the session at (after
            any warm start), when a strategy is attached.
        debounce_min_secs: The debounce's lower bound.
        commit_floor_secs: The commit rule's silence floor (the free-patience floor or the
            speech timeout), when the rule has one.
        resume_backoff: The strategy's ``resume_backoff``.
    """

    session_id: str
    turns: int = 0
    answered_turns: int = 0
    multi_answer_turns: int = 0
    speculations_started: int = 0
    speculations_adopted: int = 0
    speculations_withdrawn: int = 0
    tool_call_withdrawals: int = 0
    cancel_rate: float | None = None
    window_cancel_rate: float | None = None
    window: int = 20
    window_samples: int = 0
    hit_rate: float | None = None
    wasted_prompt_tokens: int = 0
    wasted_completion_tokens: int = 0
    wasted_tts_characters: int = 0
    withdrawn_without_usage: int = 0
    ignored_ttfb: int = 0
    playback_watchdog_fired: int = 0
    late_answers: int = 0
    debounce_secs: float | None = None
    debounce_history: list[DebounceEntry] = field(default_factory=list)
    warmups: list[WarmupEntry] = field(default_factory=list)
    debounce_changes: int = 0
    warmups_recorded: int = 0
    debounce_initial_secs: float | None = None
    debounce_min_secs: float | None = None
    commit_floor_secs: float | None = None
    resume_backoff: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSONL form of the session record."""
        return {
            "schema": SCHEMA_NAME,
            "schema_version": SCHEMA_VERSION,
            "record": "session",
            **asdict(self),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionSummary:
        """Rebuild a summary from its JSONL form, ignoring unknown fields.

        Raises:
            ValueError: If the line is not a session record of a version this code reads.
        """
        _check_header(data, "session")
        values = _known_values(cls, data, "")
        values["debounce_history"] = [
            DebounceEntry(**_known_values(DebounceEntry, d, f"debounce_history[{i}]."))
            for i, d in enumerate(_list_field(values, "debounce_history"))
        ]
        values["warmups"] = [
            WarmupEntry(**_known_values(WarmupEntry, w, f"warmups[{i}]."))
            for i, w in enumerate(_list_field(values, "warmups"))
        ]
        return cls(**values)


def _check_header(data: dict[str, Any], record: str):
    if data.get("schema") != SCHEMA_NAME or data.get("record") != record:
        raise RecordError(None, f"not a {SCHEMA_NAME} {record} record")
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RecordError("schema_version", f"must be a positive integer, got {version!r}")
    if version > SCHEMA_VERSION:
        raise NewerSchemaError(version)


# The scalar annotations a record field can have, and the JSON types each accepts (bool is an int
# subclass in Python, so it is excluded from the numeric ones explicitly).
_SCALAR_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
}


def _known_values(cls: type, data: Any, prefix: str) -> dict[str, Any]:
    """The fields of ``data`` that ``cls`` knows, checked: required ones present, scalars typed.

    Unknown fields are dropped (readers ignore what a later minor version added).
    """
    if not isinstance(data, dict):
        raise RecordError(prefix.rstrip(".") or None, f"must be an object, got {data!r}")
    values: dict[str, Any] = {}
    for f in fields(cls):
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RecordError(prefix + f.name, "missing")
            continue
        value = data[f.name]
        _check_scalar(prefix + f.name, str(f.type), value)
        values[f.name] = value
    return values


def _check_scalar(name: str, annotation: str, value: Any) -> None:
    optional = annotation.endswith(" | None")
    base = annotation.removesuffix(" | None")
    accepted = _SCALAR_TYPES.get(base)
    if accepted is None or (value is None and optional):
        return
    is_bool = isinstance(value, bool)
    if not isinstance(value, accepted) or (is_bool and base != "bool"):
        wanted = base + (" or null" if optional else "")
        raise RecordError(name, f"must be {wanted}, got {value!r}")


def _list_field(values: dict[str, Any], name: str) -> list[Any]:
    items = values.get(name, [])
    if not isinstance(items, list):
        raise RecordError(name, f"must be a list, got {items!r}")
    return items
