"""Deepgram Flux (listen v2) protocol core: scripted words in, ``TurnInfo`` events out.

A synchronous state machine, one per WebSocket connection, like
:mod:`~pipecat_speculative.standins.deepgram_listen`. Flux detects turns itself; the stand-in
does it from the received audio, measured in audio (a real-time feeder sends silence while the
user pauses), never in wall-clock time::

    words ......|<- silence in received audio ->|
                last word   +eager_eot_secs      +eot_secs
                            EagerEndOfTurn       EndOfTurn (turn_index += 1)
    words resume after EagerEndOfTurn, before EndOfTurn -> TurnResumed, then Update

``StartOfTurn`` comes with the first heard word of a turn, ``Update`` with every change of the
transcript. ``EagerEndOfTurn`` and ``TurnResumed`` are only sent when the URL sets
``eager_eot_threshold`` (as the real service does). ``eot_timeout_ms`` caps the silence before
``EndOfTurn``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from pipecat_speculative.standins.deepgram_listen import (
    OutgoingMessage,
    QueryError,
    _number,
)
from pipecat_speculative.standins.stt_script import (
    HeardWord,
    LostSegment,
    ScriptCursor,
    ScriptTracker,
)

__all__ = ["FluxOptions", "FluxSession", "FluxTurnState"]


@dataclass(frozen=True)
class FluxOptions:
    """The connection options the stand-in honours, read from the ``/v2/listen`` URL.

    Parameters:
        model: Model name (``flux-general-en``).
        sample_rate: Samples per second of the PCM the client sends.
        eager_eot_threshold: Enables EagerEndOfTurn/TurnResumed when set.
        eot_threshold: End-of-turn confidence reported with EndOfTurn (at least this).
        eot_timeout_ms: Silence after which a turn ends whatever its confidence.
        tag: Usage tag; the stand-in also uses the first one to select a script.
    """

    model: str = "flux-general-en"
    sample_rate: int = 16000
    eager_eot_threshold: float | None = None
    eot_threshold: float | None = None
    eot_timeout_ms: float | None = None
    tag: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> FluxOptions:
        """Parse and check the URL query.

        Args:
            query: The query parameters.

        Returns:
            The options.

        Raises:
            QueryError: For a model or encoding the stand-in does not speak, or a malformed
                value.
        """
        model = query.get("model")
        if not model or not model.startswith("flux"):
            raise QueryError(f"model={model!r}: /v2/listen needs a Flux model")
        encoding = query.get("encoding", "linear16")
        if encoding != "linear16":
            raise QueryError(f"encoding={encoding!r}: the stand-in only accepts linear16")
        sample_rate = _number(query, "sample_rate", None)
        if sample_rate is None or sample_rate <= 0 or sample_rate != int(sample_rate):
            raise QueryError(f"sample_rate={query.get('sample_rate')!r} is required and valid")
        return cls(
            model=model,
            sample_rate=int(sample_rate),
            eager_eot_threshold=_number(query, "eager_eot_threshold", None),
            eot_threshold=_number(query, "eot_threshold", None),
            eot_timeout_ms=_number(query, "eot_timeout_ms", None),
            tag=query.get("tag"),
        )


class FluxTurnState(Enum):
    """Where a Flux connection is in the current turn."""

    IDLE = "idle"
    """No turn in progress (before the first word, after EndOfTurn)."""
    SPEAKING = "speaking"
    """A turn has started and no EagerEndOfTurn is outstanding."""
    EAGER = "eager"
    """EagerEndOfTurn was sent; words now mean TurnResumed, more silence means EndOfTurn."""


class FluxSession:
    """One Flux connection's turn state."""

    def __init__(
        self,
        options: FluxOptions,
        cursor: ScriptCursor | Callable[[], ScriptCursor | None] | None,
        *,
        eager_eot_secs: float = 0.3,
        eot_secs: float = 0.8,
        request_id: str | None = None,
    ):
        """Initialize the session.

        Args:
            options: What the client asked for in the URL.
            cursor: The script position shared by connections playing the same script (or a
                function returning the current one, see :class:`ScriptTracker`).
            eager_eot_secs: Silence after the last word that sends EagerEndOfTurn.
            eot_secs: Silence after the last word that sends EndOfTurn (capped by the URL's
                ``eot_timeout_ms``).
            request_id: Identifier echoed in every message (random by default).
        """
        self.options = options
        self.request_id = request_id or str(uuid.uuid4())
        self._tracker = ScriptTracker(cursor, options.sample_rate)
        self._eager_secs = eager_eot_secs
        self._eot_secs = eot_secs
        if options.eot_timeout_ms is not None:
            self._eot_secs = min(self._eot_secs, options.eot_timeout_ms / 1000.0)
        self._state = FluxTurnState.IDLE
        self._turn_index = 0
        self._turn_words: list[HeardWord] = []
        self._turn_start = 0.0
        self._sequence = 0
        self._eager_sent_for: float | None = None  # last word end the eager EOT was sent for
        self._closed = False

    @property
    def state(self) -> FluxTurnState:
        """The turn state."""
        return self._state

    @property
    def tracker(self) -> ScriptTracker:
        """The script tracker (for fault injection and tests)."""
        return self._tracker

    @property
    def position_secs(self) -> float:
        """Seconds of audio received."""
        return self._tracker.position_secs

    @property
    def eager_enabled(self) -> bool:
        """Whether the URL asked for EagerEndOfTurn/TurnResumed."""
        return self.options.eager_eot_threshold is not None

    def connected(self) -> OutgoingMessage:
        """The first message of every connection."""
        return OutgoingMessage(
            "connected", {"type": "Connected", "request_id": self.request_id, "sequence_id": 0}
        )

    def on_audio(self, pcm: bytes) -> list[OutgoingMessage]:
        """Account for received audio.

        Args:
            pcm: The binary message (PCM16 mono).

        Returns:
            The messages to send.
        """
        if self._closed:
            return []
        update = self._tracker.feed(pcm)
        out: list[OutgoingMessage] = []
        if update.words:
            first_words = self._state is FluxTurnState.IDLE
            if first_words:
                self._state = FluxTurnState.SPEAKING
                self._turn_words = []
                self._turn_start = update.words[0].start_secs
            self._turn_words.extend(update.words)
            if first_words:
                out.append(self._turn_info("StartOfTurn", "start_of_turn", 0.0))
            elif self._state is FluxTurnState.EAGER:
                self._state = FluxTurnState.SPEAKING
                out.append(self._turn_info("TurnResumed", "turn_resumed", 0.1))
            out.append(self._turn_info("Update", "update", 0.05))
        silence = self._tracker.silence_secs()
        if silence is None or self._state is FluxTurnState.IDLE:
            return out
        last_end = self._tracker.last_word_end_secs
        if (
            self.eager_enabled
            and self._state is FluxTurnState.SPEAKING
            and self._eager_sent_for != last_end
            and silence >= self._eager_secs
            and silence < self._eot_secs
        ):
            self._state = FluxTurnState.EAGER
            self._eager_sent_for = last_end
            threshold = self.options.eager_eot_threshold or 0.5
            out.append(
                self._turn_info("EagerEndOfTurn", "eager_end_of_turn", min(0.99, threshold + 0.05))
            )
        if silence >= self._eot_secs:
            threshold = self.options.eot_threshold or 0.7
            out.append(self._turn_info("EndOfTurn", "end_of_turn", max(threshold, 0.9)))
            self._state = FluxTurnState.IDLE
            self._turn_index += 1
            self._turn_words = []
        return out

    def close(self) -> bool:
        """The connection is gone.

        Returns:
            True when a segment was being spoken (its remaining words are lost).
        """
        self._closed = True
        return self._tracker.close()

    def lost_segments(self, unsent: Sequence[int] = ()) -> list[LostSegment]:
        """The segments a close now would lose (unsent ones, then the one being spoken)."""
        found = [self._tracker.lost_segment(i) for i in unsent]
        found.append(self._tracker.lost_segment())
        return [segment for segment in found if segment is not None]

    def _turn_info(self, event: str, kind: str, eot_confidence: float) -> OutgoingMessage:
        self._sequence += 1
        payload: dict[str, Any] = {
            "type": "TurnInfo",
            "request_id": self.request_id,
            "sequence_id": self._sequence,
            "event": event,
            "turn_index": self._turn_index,
            "audio_window_start": round(self._turn_start, 3),
            "audio_window_end": round(self.position_secs, 3),
            "transcript": " ".join(w.word.text for w in self._turn_words),
            "words": [{"word": w.word.text, "confidence": 0.99} for w in self._turn_words],
            "end_of_turn_confidence": round(eot_confidence, 3),
        }
        return OutgoingMessage(kind, payload)
