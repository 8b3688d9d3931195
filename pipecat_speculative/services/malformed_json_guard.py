"""A websocket wrapper that skips text messages that are not JSON, instead of ending the socket.

The Deepgram SDK's listening loop and Pipecat's ElevenLabs receive loop both call ``json.loads``
on every text message and let the exception end the loop: one broken message then costs the
connection (Deepgram: a reconnect after at least 4 s of backoff, the speech in between never
transcribed; ElevenLabs: the rest of the sentence being spoken). A message that cannot be parsed
cannot be used either, but the messages after it can: the guard logs it, counts it and skips it.

A service can also look at each parsed message (``inspect``) and have one skipped that is JSON
but unusable, such as an ElevenLabs audio message whose audio is not base64 (Pipecat's decoder
would raise and end the loop the same way), or just note what it sees (an ``isFinal``).
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
        on_skip: Called with each skipped message that is not JSON.
        inspect: Called with each parsed JSON message; returns why it must be skipped, or None
            to pass it on.
        on_invalid: Called with a message ``inspect`` refused and the reason.
        skip_unparseable: False passes messages that are not JSON on (the reader's own parser
            then fails on them, as without the guard); ``inspect`` still sees the others.
    """

    def __init__(
        self,
        websocket: Any,
        on_skip: Callable[[str], None],
        *,
        inspect: Callable[[Any], str | None] | None = None,
        on_invalid: Callable[[str, str], None] | None = None,
        skip_unparseable: bool = True,
    ):
        self._wrapped = websocket
        self._on_skip = on_skip
        self._inspect = inspect
        self._on_invalid = on_invalid
        self._skip_unparseable = skip_unparseable

    @property
    def wrapped(self) -> Any:
        """The websocket inside."""
        return self._wrapped

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __aiter__(self) -> _SkippingIterator:
        return _SkippingIterator(self._wrapped.__aiter__(), self)


class _SkippingIterator:
    def __init__(self, messages: Any, guard: MalformedJSONGuard):
        self._messages = messages
        self._guard = guard

    def __aiter__(self) -> _SkippingIterator:
        return self

    async def __anext__(self) -> Any:
        while True:
            message = await self._messages.__anext__()
            guard = self._guard
            if isinstance(message, str):
                try:
                    parsed = json.loads(message)
                except ValueError:
                    if not guard._skip_unparseable:
                        return message
                    guard._on_skip(message)
                    continue
                reason = guard._inspect(parsed) if guard._inspect is not None else None
                if reason is not None:
                    if guard._on_invalid is not None:
                        guard._on_invalid(message, reason)
                    continue
            return message
