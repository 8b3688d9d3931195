"""Deepgram listen v1 (Nova) protocol core: scripted words in, ``Results`` messages out.

A synchronous state machine, one per WebSocket connection. The server shell feeds it the audio
and control messages it receives and sends what it returns (after the latency profile's delay).
It never touches a socket or a clock, so it is tested without a network.

What it sends, following Deepgram's documented behaviour:

- ``Results`` with ``is_final=false`` (interim) every ``interim_interval_secs`` of audio while
  there are heard, not yet final words; each interim carries all of them.
- ``Results`` with ``is_final=true, speech_final=true`` when a pause reaches the endpointing
  silence (``endpointing`` ms from the URL, at least ``endpointing_floor_secs``).
- On ``Finalize``: ``Results`` with ``is_final=true, from_finalize=true`` carrying only the words
  not yet final, or an empty transcript. Never a final word twice: pipecat pushes every final
  ``Results`` as a ``TranscriptionFrame``, so a repeat would be spoken twice into the context.
- ``SpeechStarted`` at a speech onset (``vad_events=true``), ``UtteranceEnd`` after
  ``utterance_end_ms`` of silence, ``Metadata`` on ``CloseStream``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pipecat_speculative.standins.stt_script import (
    HeardWord,
    LostSegment,
    ScriptCursor,
    ScriptTracker,
    TrackerUpdate,
    words_text,
)

__all__ = [
    "DEFAULT_ENDPOINTING_MS",
    "ListenV1Options",
    "ListenV1Session",
    "OutgoingMessage",
    "QueryError",
]

DEFAULT_ENDPOINTING_MS = 10
"""Deepgram's endpointing when the URL sets none."""

_MODEL_UUID = "1dbdfb4d-85b2-4659-9831-16b3c76229aa"


class QueryError(ValueError):
    """A connection URL asks for something the stand-in (or Deepgram) does not accept."""


@dataclass(frozen=True)
class OutgoingMessage:
    """One JSON message a session wants sent.

    Parameters:
        kind: What it is, which decides its delay: ``interim``, ``final``, ``finalize``,
            ``utterance_end``, ``speech_started``, ``metadata`` (v1); ``connected``, ``update``,
            ``start_of_turn``, ``eager_end_of_turn``, ``turn_resumed``, ``end_of_turn`` (Flux).
        payload: The JSON body.
        segment: For a final, the script segment of its first word (lost if it is never sent).
    """

    kind: str
    payload: dict[str, Any]
    segment: int | None = None


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    value = query.get(name)
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise QueryError(f"{name}={value!r} is not a boolean")


def _number(query: Mapping[str, str], name: str, default: float | None) -> float | None:
    value = query.get(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise QueryError(f"{name}={value!r} is not a number") from None


@dataclass(frozen=True)
class ListenV1Options:
    """The connection options the stand-in honours, read from the ``/v1/listen`` URL.

    Parameters:
        model: Model name, echoed in ``metadata.model_info``.
        sample_rate: Samples per second of the PCM the client sends.
        interim_results: Whether interim results are sent.
        punctuate: Punctuated and cased transcripts, else bare lowercase words.
        endpointing_ms: Silence (ms) that ends an utterance with a final; None when disabled.
        utterance_end_ms: Silence (ms) after the last word that sends ``UtteranceEnd``.
        vad_events: Whether ``SpeechStarted`` is sent.
        tag: Deepgram's usage tag; the stand-in also uses it to select a script.
    """

    model: str = "nova-3-general"
    sample_rate: int = 16000
    interim_results: bool = False
    punctuate: bool = False
    endpointing_ms: float | None = DEFAULT_ENDPOINTING_MS
    utterance_end_ms: float | None = None
    vad_events: bool = False
    tag: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ListenV1Options:
        """Parse and check the URL query.

        Args:
            query: The query parameters.

        Returns:
            The options.

        Raises:
            QueryError: For an encoding other than ``linear16``, more than one channel, or a
                malformed value.
        """
        encoding = query.get("encoding", "linear16")
        if encoding != "linear16":
            raise QueryError(f"encoding={encoding!r}: the stand-in only accepts linear16")
        channels = _number(query, "channels", 1)
        if channels != 1 or _flag(query, "multichannel", False):
            raise QueryError("the stand-in only accepts mono audio (channels=1)")
        sample_rate = _number(query, "sample_rate", 16000)
        assert sample_rate is not None
        if sample_rate <= 0 or sample_rate != int(sample_rate):
            raise QueryError(f"sample_rate={query.get('sample_rate')!r} is not a valid rate")
        endpointing_raw = query.get("endpointing")
        endpointing: float | None
        if endpointing_raw is not None and endpointing_raw.lower() == "false":
            endpointing = None
        else:
            endpointing = _number(query, "endpointing", DEFAULT_ENDPOINTING_MS)
        return cls(
            model=query.get("model", "nova-3-general"),
            sample_rate=int(sample_rate),
            interim_results=_flag(query, "interim_results", False),
            punctuate=_flag(query, "punctuate", False) or _flag(query, "smart_format", False),
            endpointing_ms=endpointing,
            utterance_end_ms=_number(query, "utterance_end_ms", None),
            vad_events=_flag(query, "vad_events", False),
            tag=query.get("tag"),
        )


class ListenV1Session:
    """One listen v1 connection's transcription state."""

    def __init__(
        self,
        options: ListenV1Options,
        cursor: ScriptCursor | Callable[[], ScriptCursor | None] | None,
        *,
        interim_interval_secs: float = 0.5,
        endpointing_floor_secs: float = 0.3,
        request_id: str | None = None,
    ):
        """Initialize the session.

        Args:
            options: What the client asked for in the URL.
            cursor: The script position shared by connections playing the same script (or a
                function returning the current one, see :class:`ScriptTracker`).
            interim_interval_secs: Audio between two interim results.
            endpointing_floor_secs: Least silence that ends an utterance, whatever the URL
                says. Deepgram's nominal 10 ms endpointing reacts in practice only after its
                own voice activity model has heard a few hundred ms of silence; with Silero's
                0.2 s stop the client's ``Finalize`` normally comes first, as in the
                reference deployment's logs.
            request_id: Identifier echoed in every message (random by default).
        """
        self.options = options
        self.request_id = request_id or str(uuid.uuid4())
        self._tracker = ScriptTracker(cursor, options.sample_rate)
        self._interim_interval = interim_interval_secs
        self._endpoint_secs: float | None = None
        if options.endpointing_ms is not None:
            self._endpoint_secs = max(options.endpointing_ms / 1000.0, endpointing_floor_secs)
        self._pending: list[HeardWord] = []  # heard, not yet sent in a final
        self._window_start = 0.0  # start of the audio the next final covers
        self._last_interim_at: float | None = None
        self._interim_count = 0  # pending words already sent in an interim
        self._utterance_end_due = False
        self._closed = False

    @property
    def tracker(self) -> ScriptTracker:
        """The script tracker (for fault injection and tests)."""
        return self._tracker

    @property
    def position_secs(self) -> float:
        """Seconds of audio received."""
        return self._tracker.position_secs

    # -- inputs ---------------------------------------------------------------------------------

    def on_audio(self, pcm: bytes) -> list[OutgoingMessage]:
        """Account for received audio.

        Args:
            pcm: The binary message (PCM16 mono).

        Returns:
            The messages to send.
        """
        if self._closed:
            return []
        update: TrackerUpdate = self._tracker.feed(pcm)
        out: list[OutgoingMessage] = []
        if update.onsets and self.options.vad_events:
            for onset in update.onsets:
                out.append(
                    OutgoingMessage(
                        "speech_started",
                        {"type": "SpeechStarted", "channel": [0], "timestamp": round(onset, 3)},
                    )
                )
        if update.words:
            self._pending.extend(update.words)
            self._utterance_end_due = self.options.utterance_end_ms is not None
        position = self.position_secs
        if (
            self.options.interim_results
            and len(self._pending) > self._interim_count
            and (
                self._last_interim_at is None
                or position - self._last_interim_at >= self._interim_interval - 1e-9
            )
        ):
            out.append(self._results(self._pending, is_final=False))
            self._last_interim_at = position
            self._interim_count = len(self._pending)
        silence = self._tracker.silence_secs()
        if (
            silence is not None
            and self._pending
            and self._endpoint_secs is not None
            and silence >= self._endpoint_secs
        ):
            out.append(self._final(speech_final=True, from_finalize=False))
        if (
            silence is not None
            and self._utterance_end_due
            and self.options.utterance_end_ms is not None
            and silence >= self.options.utterance_end_ms / 1000.0
        ):
            self._utterance_end_due = False
            last = self._tracker.last_word_end_secs or 0.0
            out.append(
                OutgoingMessage(
                    "utterance_end",
                    {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": round(last, 3)},
                )
            )
        return out

    def on_finalize(self) -> list[OutgoingMessage]:
        """Answer ``{"type": "Finalize"}``: the words not yet final, possibly none.

        Returns:
            Exactly one ``Results`` message with ``from_finalize=true``.
        """
        if self._closed:
            return []
        return [self._final(speech_final=False, from_finalize=True)]

    def on_close_stream(self) -> list[OutgoingMessage]:
        """Answer ``{"type": "CloseStream"}``: flush pending words, then ``Metadata``.

        Returns:
            The final results (if any words are pending) and the metadata message.
        """
        if self._closed:
            return []
        out = []
        if self._pending:
            out.append(self._final(speech_final=True, from_finalize=False))
        self._closed = True
        self._tracker.close()
        out.append(
            OutgoingMessage(
                "metadata",
                {
                    "type": "Metadata",
                    "transaction_key": "deprecated",
                    "request_id": self.request_id,
                    "sha256": "0" * 64,
                    "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                    "duration": round(self.position_secs, 3),
                    "channels": 1,
                    "models": [_MODEL_UUID],
                    "model_info": {_MODEL_UUID: self._model_info()},
                },
            )
        )
        return out

    def close(self) -> bool:
        """The connection is gone.

        Returns:
            True when a segment was being spoken, or its words were heard and not yet sent in a
            final (they are lost).
        """
        self._closed = True
        return self._tracker.close() or bool(self._pending)

    def lost_segments(self, unsent: Sequence[int] = ()) -> list[LostSegment]:
        """The segments whose words a close now would lose, in order, with their onset audio.

        Args:
            unsent: Segments of finals produced but never sent (the connection dropped first).
        """
        indices = [*unsent, *(w.segment_index for w in self._pending)]
        active = self._tracker.lost_segment()
        if active is not None:
            indices.append(active.index)
        found = (self._tracker.lost_segment(i) for i in dict.fromkeys(indices))
        return [segment for segment in found if segment is not None]

    # -- message builders -----------------------------------------------------------------------

    def _final(self, *, speech_final: bool, from_finalize: bool) -> OutgoingMessage:
        words, self._pending = self._pending, []
        self._interim_count = 0
        self._last_interim_at = None
        message = self._results(
            words, is_final=True, speech_final=speech_final, from_finalize=from_finalize
        )
        self._window_start = self.position_secs
        segment = words[0].segment_index if words else None
        return OutgoingMessage("finalize" if from_finalize else "final", message.payload, segment)

    def _model_info(self) -> dict[str, str]:
        return {"name": self.options.model, "version": "2024-01-01.0", "arch": "nova-3"}

    def _results(
        self,
        words: list[HeardWord],
        *,
        is_final: bool,
        speech_final: bool = False,
        from_finalize: bool = False,
    ) -> OutgoingMessage:
        start = self._window_start
        duration = max(0.0, self.position_secs - start)
        punctuate = self.options.punctuate
        payload: dict[str, Any] = {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(duration, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": words_text(words, punctuate=punctuate),
                        "confidence": 0.99 if words else 0.0,
                        "words": [
                            {
                                "word": w.word.bare,
                                "start": round(w.start_secs, 3),
                                "end": round(w.end_secs, 3),
                                "confidence": 0.99,
                                "punctuated_word": w.word.text if punctuate else w.word.bare,
                            }
                            for w in words
                        ],
                    }
                ]
            },
            "metadata": {
                "request_id": self.request_id,
                "model_info": self._model_info(),
                "model_uuid": _MODEL_UUID,
            },
        }
        return OutgoingMessage("final" if is_final else "interim", payload)
