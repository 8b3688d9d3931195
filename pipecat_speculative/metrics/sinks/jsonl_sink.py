"""One JSON line per turn, and one per session at its end.

The schema is :mod:`pipecat_speculative.metrics.turn_record` (``SCHEMA_VERSION``); each line
carries ``schema``, ``schema_version`` and ``record`` (``"turn"`` or ``"session"``). The file is
appended to, so several sessions can share one file; ``session_id`` tells them apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from loguru import logger

from pipecat_speculative.metrics.sinks.base_turn_timing_sink import BaseTurnTimingSink
from pipecat_speculative.metrics.turn_record import SessionSummary, TurnRecord

__all__ = ["JSONLSink"]


class JSONLSink(BaseTurnTimingSink):
    """Appends turn and session records to a JSONL file.

    Lines are written and flushed as turns close, so a crashed session keeps its turns. Writing
    is synchronous: one short line per turn, on the observer's task, not the pipeline's.

    Args:
        path: The file; parent directories are created.
        write_session: Also write the session record at the end.
    """

    def __init__(self, path: str | Path, *, write_session: bool = True):
        self._path = Path(path)
        self._write_session = write_session
        self._file: IO[str] | None = None

    def __str__(self):
        return f"JSONLSink({self._path})"

    @property
    def path(self) -> Path:
        """The file written to."""
        return self._path

    def on_turn(self, record: TurnRecord, summary: SessionSummary):
        """Append the turn record."""
        self._write(record.to_dict())

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
            self._file = self._path.open("a", encoding="utf-8")
            logger.debug(f"{self}: writing turn timing records")
        self._file.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
        self._file.flush()
