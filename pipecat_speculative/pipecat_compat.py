"""The one place that touches Pipecat's private names.

Pipecat marks with a leading underscore what it may change in any release. The plugin needs a few
such names (the list and the reasons are in ``docs/pipecat-internals.md``). Every read or write of
one goes through a small named function here, and every private hook a plugin class overrides is
listed in :data:`OVERRIDDEN_HOOKS`. ``tests/test_pipecat_compat.py`` checks each against the
installed Pipecat and fails any other module that reaches for a private Pipecat name, so a Pipecat
upgrade breaks in one place, with the name that moved.

Imports of Pipecat classes are kept inside the functions that need them: this module is imported by
the runtime services, and each service should pull in only its own Pipecat service module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipecat.services.llm_service import LLMService
    from pipecat.services.tts_service import TTSService
    from pipecat.turns.speculation_gate import SpeculationGate
    from pipecat.utils.base_object import BaseObject

__all__ = [
    "OVERRIDDEN_HOOKS",
    "PRIVATE_ATTRIBUTES",
    "PrivateHook",
    "call_event_handler",
    "deepgram_connection",
    "deepgram_skip_malformed_messages",
    "mark_turn_open_at_gate",
    "openai_client",
    "register_event_handler",
    "speculation_gate",
    "tts_reuses_turn_context_id",
    "tts_turn_context_id",
    "tts_websocket",
]


@dataclass(frozen=True)
class PrivateHook:
    """A private Pipecat method that a plugin class overrides.

    A subclass has to spell the name of the method it overrides, so these cannot go through a
    function here; they are listed instead, and the compatibility test checks that each still
    exists with these parameters, so a renamed hook fails the test instead of silently never
    being called.

    Parameters:
        owner: Dotted path of the Pipecat class that defines the hook.
        name: The hook's name.
        params: Its parameter names, ``self`` included.
        is_async: Whether it is a coroutine function.
        overridden_by: Dotted path of the plugin class that overrides it.
    """

    owner: str
    name: str
    params: tuple[str, ...]
    is_async: bool
    overridden_by: str


_ELEVENLABS = "pipecat.services.elevenlabs.tts.ElevenLabsTTSService"
_WARM_ELEVENLABS = (
    "pipecat_speculative.services.warm_elevenlabs_tts_service.WarmElevenLabsTTSService"
)
_DEEPGRAM = "pipecat.services.deepgram.stt.DeepgramSTTService"
_WARM_DEEPGRAM = "pipecat_speculative.services.warm_deepgram_stt_service.WarmDeepgramSTTService"

OVERRIDDEN_HOOKS: tuple[PrivateHook, ...] = (
    # The warm ElevenLabs service times the connection, bounds it, and opens the next response's
    # context ahead of its text; Pipecat has no public hook around its socket or contexts.
    PrivateHook(
        _ELEVENLABS, "_websocket_connect", ("self", "uri", "kwargs"), True, _WARM_ELEVENLABS
    ),
    PrivateHook(_ELEVENLABS, "_connect_websocket", ("self",), True, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_on_websocket_connected", ("self",), True, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_clear_connection_state", ("self",), False, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_send_context_init", ("self", "context_id"), True, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_close_context", ("self", "context_id"), True, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_send_keepalive", ("self",), True, _WARM_ELEVENLABS),
    PrivateHook(_ELEVENLABS, "_update_settings", ("self", "delta"), True, _WARM_ELEVENLABS),
    # ... and reports the sentences a dropped socket cut before it reconnects.
    PrivateHook(
        "pipecat.services.websocket_service.WebsocketService",
        "_reconnect_websocket",
        ("self", "attempt_number"),
        True,
        _WARM_ELEVENLABS,
    ),
    # The warm Deepgram service bounds and times the first connection and every reconnection.
    PrivateHook(_DEEPGRAM, "_connect", ("self",), True, _WARM_DEEPGRAM),
    PrivateHook(_DEEPGRAM, "_keepalive_handler", ("self",), True, _WARM_DEEPGRAM),
)
"""Private Pipecat methods overridden by plugin classes."""

PRIVATE_ATTRIBUTES: tuple[tuple[str, str], ...] = (
    ("pipecat.services.llm_service.LLMService", "_speculation_gate"),
    ("pipecat.services.openai.base_llm.BaseOpenAILLMService", "_client"),
    (_DEEPGRAM, "_connection"),
    (_DEEPGRAM, "_client"),
    ("pipecat.services.websocket_service.WebsocketService", "_websocket"),
    ("pipecat.services.tts_service.TTSService", "_turn_context_id"),
    ("pipecat.services.tts_service.TTSService", "_reuse_context_id_within_turn"),
    ("pipecat.utils.base_object.BaseObject", "_register_event_handler"),
    ("pipecat.utils.base_object.BaseObject", "_call_event_handler"),
)
"""(owner class, name) of every private Pipecat attribute the functions below read or write."""


# -- LLM ----------------------------------------------------------------------------------------


def speculation_gate(llm: LLMService) -> SpeculationGate:
    """The ``SpeculationGate`` inside a Pipecat LLM service.

    Every 1.14 ``LLMService`` builds one and keeps it private; the speculation-aware mixin needs it
    to tell the gate about turns it sees at queue time.
    """
    return llm._speculation_gate


def mark_turn_open_at_gate(llm: LLMService) -> None:
    """Tell the LLM's gate a user turn is open, before it decides whether to hold a speculation.

    The gate learns turn starts only when ``UserStartedSpeakingFrame`` reaches ``process_frame``,
    which is after any context queued ahead of it. Feeding it the frame runs only the gate's
    bookkeeping (a system frame is passed through, not held); the returned frames are dropped
    because the real frame still travels the pipeline.
    """
    from pipecat.frames.frames import UserStartedSpeakingFrame
    from pipecat.processors.frame_processor import FrameDirection

    speculation_gate(llm).process(UserStartedSpeakingFrame(), FrameDirection.DOWNSTREAM)


def openai_client(llm: Any) -> Any | None:
    """The ``AsyncOpenAI`` client of a Pipecat OpenAI-compatible LLM service, or None.

    The service builds it in ``__init__`` (through the public ``create_client``) but exposes no
    accessor; the warm service sends token-free requests on it and tests close its pool.
    """
    return getattr(llm, "_client", None)


# -- STT ----------------------------------------------------------------------------------------


def deepgram_connection(stt: Any) -> Any | None:
    """The live Deepgram SDK connection of a ``DeepgramSTTService``, or None when disconnected."""
    return getattr(stt, "_connection", None)


def deepgram_skip_malformed_messages(stt: Any, on_skip: Callable[[str], None]) -> bool:
    """Make a ``DeepgramSTTService`` skip a text message that is not JSON instead of reconnecting.

    The Deepgram SDK's listening loop ends on the first message ``json.loads`` refuses; Pipecat
    then drops the socket and backs off before reconnecting (seconds of the user's speech are
    not transcribed). The SDK connection's websocket (its private ``_websocket``) is wrapped as
    each connection opens, through the service's SDK client (Pipecat's private ``_client``).

    Args:
        stt: The service.
        on_skip: Called with each skipped message.

    Returns:
        Whether the hook could be installed (False when the SDK no longer has the shape).
    """
    v1 = getattr(getattr(getattr(stt, "_client", None), "listen", None), "v1", None)
    inner = getattr(v1, "connect", None)
    if inner is None:
        return False
    if getattr(inner, "skips_malformed_messages", False):
        return True

    @contextlib.asynccontextmanager
    async def connect(*args: Any, **kwargs: Any):
        async with inner(*args, **kwargs) as connection:
            websocket = getattr(connection, "_websocket", None)
            if websocket is not None:
                from pipecat_speculative.services.malformed_json_guard import MalformedJSONGuard

                connection._websocket = MalformedJSONGuard(websocket, on_skip)
            yield connection

    connect.skips_malformed_messages = True  # type: ignore[attr-defined]
    v1.connect = connect
    return True


# -- TTS ----------------------------------------------------------------------------------------


def tts_websocket(tts: Any) -> Any | None:
    """The socket of a Pipecat WebSocket service, or None before the first connection."""
    return getattr(tts, "_websocket", None)


def tts_turn_context_id(tts: TTSService) -> str | None:
    """The audio context id of the response the TTS service is speaking, or None between them."""
    return tts._turn_context_id


def tts_reuses_turn_context_id(tts: TTSService) -> bool:
    """Whether the TTS service keeps one audio context for a whole turn (its constructor flag)."""
    return bool(tts._reuse_context_id_within_turn)


# -- events -------------------------------------------------------------------------------------


def register_event_handler(obj: BaseObject, event_name: str, *, sync: bool = False) -> None:
    """Declare an event on a Pipecat object, so users can attach handlers to it.

    ``sync=True`` runs handlers inline (in order, before the caller continues) instead of in a
    task each: the plugin's timing and warmup events need that order.
    """
    obj._register_event_handler(event_name, sync=sync)


async def call_event_handler(obj: BaseObject, event_name: str, *args: Any, **kwargs: Any) -> None:
    """Run the handlers attached to an event declared with :func:`register_event_handler`."""
    await obj._call_event_handler(event_name, *args, **kwargs)
