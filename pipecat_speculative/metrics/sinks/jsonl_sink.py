"""One JSON line per turn, and one per session at its end.

The schema is :mod:`pipecat_speculative.metrics.turn_record` (``SCHEMA_VERSION``); each line
carries ``schema``, ``schema_version`` and ``record`` (``"turn"`` or ``"session"``). The file is
appended to, so several sessions can share one file; ``session_id`` tells them apart.

User text is hashed by default (see :mod:`~pipecat_speculative.metrics.transcript_redaction`)
and a file the sink creates is readable by its owner only (mode 0600): the records are about
a person's conversation.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import IO, Any

from loguru import logger

from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.transcript_redaction import TranscriptRedaction, redact_record
from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord

__all__ = ["JSONLSink"]


class JSONLSink(BaseTurnTimingSink):
    """Appends turn and session records to a JSONL file.

    Lines are written and flushed as turns close, so a crashed session keeps its turns. Writing
    is synchronous: one short line per turn, on the observer's task, not the pipeline's.

    Args:
        path: The file; parent directories are created.
        write_session: Also write the session record at the end.
        transcripts: What to write of the user's words: ``hash`` (default), ``drop`` or
            ``off`` (verbatim, for test data).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        write_session: bool = True,
        transcripts: TranscriptRedaction | str = TranscriptRedaction.HASH,
    ):
        self._path = Path(path)
        self._write_session = write_session
        self._transcripts = TranscriptRedaction(transcripts)
        self._file: IO[str] | None = None

    def __str__(self):
        return f"JSONLSink({self._path})"

    @property
    def path(self) -> Path:
        """The file written to."""
        return self._path

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """Append the turn record."""
        self._write(redact_record(record.to_dict(), self._transcripts))

    def on_session_end(self, summary: SessionSummary):
        """Append the session record."""
        if self._write_session:
            self._write(summary.to_dict())

    def close(self):
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _write(self, data: dict[str, Any]):
        if self._file is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            mode = os.fstat(fd).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                logger.warning(
                    f"{self}: the file already exists and others can read it "
                    f"(mode {stat.S_IMODE(mode):o}); its turn records include timing of private "
                    "conversations"
                )
            self._file = os.fdopen(fd, "a", encoding="utf-8")
            logger.debug(f"{self}: writing turn timing records")
        self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
