"""One human-readable, structured loguru line per turn.

The line reads like a latency breakdown::

    turn 3 [speculative] end of speech → first audio 1,240 ms | speech → LLM start 420 |
    LLM first token 610 | first sentence 95 | LLM → TTS start 2 | TTS first audio 270 |
    playout 12 | commit at 800, after commit 440 | speculations 2: 1 adopted, 1 withdrawn
    (resumed), wasted 312+41 tokens 0 chars | answers 1

(one line in the log). The full record is bound to the message as ``extra["turn_timing"]`` (the
JSONL dict), so a JSON log formatter or a loguru sink gets the structure without parsing text.
"""

from __future__ import annotations

from loguru import logger

from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.transcript_redaction import TranscriptRedaction, redact_record
from pipecat_speculative.metrics.turn_record import (
    DebounceEntry,
    SessionSummary,
    TurnRecord,
    WarmupEntry,
)

__all__ = ["LogSink", "format_turn_line"]

_STAGE_LABELS: tuple[tuple[str, str], ...] = (
    ("speech_to_llm_start", "speech → LLM start"),
    ("llm_first_token", "LLM first token"),
    ("first_sentence", "first sentence"),
    ("llm_to_tts_start", "LLM → TTS start"),
    ("tts_first_audio", "TTS first audio"),
    ("playout", "playout"),
)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def format_turn_line(record: TurnRecord) -> str:
    """The human-readable breakdown of one turn, on one line."""
    flags = ["speculative" if record.speculative else "normal"]
    if record.interrupted:
        flags.append("interrupted")
    if record.playback_watchdog_fired:
        flags.append("playback watchdog")
    if record.anchor != "end_of_speech":
        flags.append(f"from {record.anchor}")
    parts = [
        f"turn {record.turn} [{', '.join(flags)}] end of speech → first audio "
        f"{_ms(record.stage('total'))} ms"
    ]
    parts += [f"{label} {_ms(record.stage(key))}" for key, label in _STAGE_LABELS]
    parts.append(
        f"commit at {_ms(record.moment('commit'))}, after commit {_ms(record.stage('after_commit'))}"
    )
    if record.moment("rag_start") is not None or record.moment("rag_skip") is not None:
        rag = "skipped" if record.moment("rag_skip") is not None else _ms(record.stage("rag"))
        parts.append(f"RAG {rag}")
    if record.speculations_started:
        reasons = sorted(
            {s.reason or "unknown" for s in record.speculations if s.outcome == "withdrawn"}
        )
        withdrawn = f"{record.speculations_withdrawn} withdrawn"
        if reasons:
            withdrawn += f" ({', '.join(reasons)})"
        unreported = (
            f" ({record.withdrawn_without_usage} unreported)"
            if record.withdrawn_without_usage
            else ""
        )
        parts.append(
            f"speculations {record.speculations_started}: {record.speculations_adopted} adopted, "
            f"{withdrawn}, wasted {record.wasted_prompt_tokens}+{record.wasted_completion_tokens} "
            f"tokens{unreported} {record.wasted_tts_characters} chars"
        )
    parts.append(f"answers {record.answers}")
    if record.clamped:
        parts.append(f"{len(record.clamped)} values before the anchor clamped to 0")
    return " | ".join(parts)


class LogSink(BaseTurnTimingSink):
    """Logs each turn, debounce change, warmup and the session summary with loguru.

    Args:
        level: Loguru level of the per-turn line. INFO: one line per turn is the point of it.
        name: Prefix of every line (the observer passes its own name).
        transcripts: What the bound record keeps of the user's words: ``drop`` (default; a
            log line is for timings and logs travel far), ``hash`` or ``off``.
    """

    def __init__(
        self,
        *,
        level: str = "INFO",
        name: str = "TurnTiming",
        transcripts: TranscriptRedaction | str = TranscriptRedaction.DROP,
    ):
        self._level = level
        self._name = name
        self._transcripts = TranscriptRedaction(transcripts)

    def __str__(self):
        return f"LogSink({self._name})"

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """Log the turn's breakdown, with the record bound as ``turn_timing``."""
        logger.bind(turn_timing=redact_record(record.to_dict(), self._transcripts)).log(
            self._level, f"{self._name}: {format_turn_line(record)}"
        )

    def on_debounce_changed(self, entry: DebounceEntry, summary: SessionSummary):
        """Log a change of the speculation delay."""
        logger.info(
            f"{self._name}: speculation delay {entry.old_secs * 1000:.0f} → "
            f"{entry.new_secs * 1000:.0f} ms ({entry.reason}; window cancel rate "
            f"{entry.window_cancel_rate:.0%} over {entry.samples})"
        )

    def on_warmup(self, entry: WarmupEntry, summary: SessionSummary):
        """Log a warmup's timing."""
        logger.info(
            f"{self._name}: warmup {entry.service} {'ok' if entry.ok else 'FAILED'} "
            f"in {entry.secs * 1000:.0f} ms"
        )

    def on_session_end(self, summary: SessionSummary):
        """Log the session's speculation accounting."""
        logger.bind(turn_timing_session=summary.to_dict()).log(
            self._level,
            f"{self._name}: session {summary.session_id}: {summary.turns} turns "
            f"({summary.answered_turns} answered, {summary.multi_answer_turns} answered twice), "
            f"speculations {summary.speculations_started} started, "
            f"{summary.speculations_adopted} adopted, {summary.speculations_withdrawn} withdrawn "
            f"({summary.tool_call_withdrawals} tool calls), cancel rate "
            f"{_rate(summary.cancel_rate)}, hit rate {_rate(summary.hit_rate)}, wasted "
            f"{summary.wasted_prompt_tokens}+{summary.wasted_completion_tokens} tokens "
            f"{summary.wasted_tts_characters} chars, debounce changes "
            f"{summary.debounce_changes}, playback watchdog {summary.playback_watchdog_fired}",
        )
