"""The audio an STT stream has not transcribed for good yet, to send again after a reconnection.

A streaming STT connection that drops mid-utterance takes with it every word it had not
finalized: the audio was sent, but its final transcript never came. Audio that arrives while the
service reconnects (Pipecat's Deepgram loop backs off at least 4 s) is not sent at all. Both are
the user's words. :class:`AudioReplayBuffer` keeps the audio sent since the last final transcript
(and the audio of an outage), bounded by ``max_secs``; when the next connection opens, the
service sends it first, and the words are transcribed on the new connection.

Positions are seconds of audio in the current stream, which is what a final transcript's
``start + duration`` says; a new stream starts with the re-sent audio at 0. Synchronous and
clock-free: the service feeds it what it sends and the finals it gets.
"""

from __future__ import annotations

from collections import deque

__all__ = ["AudioReplayBuffer"]


class AudioReplayBuffer:
    """Audio of the current stream that no final transcript covers yet, oldest first.

    Args:
        max_secs: Most audio kept; older audio is dropped (and counted) first.
        bytes_per_sec: Bytes of one second of the audio (``sample_rate * 2 * channels`` for PCM16).
    """

    def __init__(self, max_secs: float, bytes_per_sec: int):
        if max_secs <= 0:
            raise ValueError(f"max_secs must be > 0, got {max_secs}")
        if bytes_per_sec <= 0:
            raise ValueError(f"bytes_per_sec must be > 0, got {bytes_per_sec}")
        self._max_bytes = int(max_secs * bytes_per_sec) // 2 * 2
        self._bytes_per_sec = bytes_per_sec
        self._chunks: deque[bytes] = deque()
        self._size = 0
        # Stream position (bytes) of the first byte kept.
        self._start = 0
        self.dropped_secs = 0.0
        """Audio pushed out by the bound before any final covered it."""

    @property
    def secs(self) -> float:
        """Seconds of audio kept."""
        return self._size / self._bytes_per_sec

    def append(self, chunk: bytes) -> None:
        """Keep ``chunk``, the audio that follows what is kept (sent now, or not sendable)."""
        if not chunk:
            return
        self._chunks.append(chunk)
        self._size += len(chunk)
        while self._size > self._max_bytes:
            self._drop_head(self._size - self._max_bytes)

    def acknowledge(self, until_secs: float) -> None:
        """A final transcript covers the stream up to ``until_secs``: forget the audio before it."""
        until = int(until_secs * self._bytes_per_sec)
        until -= until % 2  # whole samples
        if until > self._start:
            self._drop_head(until - self._start, counted=False)

    def restart(self) -> list[bytes]:
        """A new stream starts with the audio kept: returns it to send first (still kept)."""
        self._start = 0
        return list(self._chunks)

    def _drop_head(self, nbytes: int, *, counted: bool = True) -> None:
        nbytes = min(nbytes, self._size)
        if counted:
            self.dropped_secs += nbytes / self._bytes_per_sec
        self._start += nbytes
        self._size -= nbytes
        while nbytes > 0:
            head = self._chunks[0]
            if len(head) <= nbytes:
                self._chunks.popleft()
                nbytes -= len(head)
            else:
                self._chunks[0] = head[nbytes:]
                nbytes = 0
