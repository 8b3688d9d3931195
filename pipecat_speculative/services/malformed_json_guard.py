"""A websocket wrapper that skips text messages that are not JSON, instead of ending the socket.

The Deepgram SDK's listening loop and Pipecat's ElevenLabs receive loop both call ``json.loads``
on every text message and let the exception end the loop: one broken message then costs the
connection (Deepgram: a reconnect after at least 4 s of backoff, the speech in between never
transcribed; ElevenLabs: the rest of the sentence being spoken). A message that cannot be parsed
cannot be used either, but the messages after it can: the guard logs it, counts it and skips it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

__all__ = ["MalformedJSONGuard"]


class MalformedJSONGuard:
    """Wraps a websocket: iteration skips unparseable text messages; all else is the socket's.

    Args:
        websocket: The websocket (anything async-iterable with the websocket's methods).
        on_skip: Called with each skipped message.
    """

    def __init__(self, websocket: Any, on_skip: Callable[[str], None]):
        self._wrapped = websocket
        self._on_skip = on_skip

    @property
    def wrapped(self) -> Any:
        """The websocket inside."""
        return self._wrapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __aiter__(self) -> _SkippingIterator:
        return _SkippingIterator(self._wrapped.__aiter__(), self._on_skip)


class _SkippingIterator:
    def __init__(self, messages: Any, on_skip: Callable[[str], None]):
        self._messages = messages
        self._on_skip = on_skip

    def __aiter__(self) -> _SkippingIterator:
        return self

    async def __anext__(self) -> Any:
        while True:
            message = await self._messages.__anext__()
            if isinstance(message, str):
                try:
                    json.loads(message)
                except ValueError:
                    self._on_skip(message)
                    continue
            return message
