"""Pytest fixtures that start the loopback stand-ins (registered through the ``pytest11`` entry point).

Installed with the package, so any project's tests can use them::

    async def test_my_bot_answers(standin_openai_llm, openai_standin):
        ...  # standin_openai_llm is a real OpenAILLMService pointed at the stand-in

Fixtures (all function-scoped; servers stop cleanly at teardown):

- ``latency_profile`` -> :class:`LatencyProfile`: :meth:`LatencyProfile.fast` by default.
  Override it in a test module or conftest to run the stand-ins at another speed.
- ``openai_standin`` -> :class:`OpenAIStandin`, ``elevenlabs_standin`` ->
  :class:`ElevenLabsStandin`, ``pinecone_standin`` -> :class:`PineconeStandin`: started servers
  using ``latency_profile``.
- ``standin_openai_llm`` -> Pipecat ``OpenAILLMService`` (model ``gpt-4o-mini``) on
  ``openai_standin``; its HTTP client is closed at teardown.
- ``standin_elevenlabs_tts`` -> Pipecat ``ElevenLabsTTSService`` (16 kHz, voice ``standin``)
  on ``elevenlabs_standin``; it connects when its pipeline starts.

This module is imported by every pytest run of an environment where the package is installed, so
it imports only the stdlib, pytest and the profile at module level; servers and Pipecat are
imported inside the fixtures. Async fixtures need ``pytest-asyncio``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from pipecat_speculative.standins.profile import LatencyProfile

try:
    import pytest_asyncio

    _async_fixture: Any = pytest_asyncio.fixture
except ImportError:  # without pytest-asyncio async fixtures cannot run anyway
    _async_fixture = pytest.fixture

if TYPE_CHECKING:
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
    from pipecat.services.openai.llm import OpenAILLMService

    from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
    from pipecat_speculative.standins.openai_server import OpenAIStandin
    from pipecat_speculative.standins.pinecone_server import PineconeStandin

__all__ = [
    "STANDIN_API_KEY",
    "STANDIN_LLM_MODEL",
    "STANDIN_TTS_VOICE",
    "elevenlabs_standin",
    "latency_profile",
    "openai_standin",
    "pinecone_standin",
    "standin_elevenlabs_tts",
    "standin_openai_llm",
]

STANDIN_API_KEY = "test"
"""The key the fixture services present (the stand-ins accept any non-empty key by default)."""

STANDIN_LLM_MODEL = "gpt-4o-mini"
STANDIN_TTS_VOICE = "standin"


@pytest.fixture
def latency_profile() -> LatencyProfile:
    """The stand-ins' latency profile: fast (no delays) unless a test overrides this fixture."""
    return LatencyProfile.instant()


@_async_fixture
async def openai_standin(latency_profile: LatencyProfile) -> AsyncIterator[OpenAIStandin]:
    """A started OpenAI stand-in; ``base_url + "/v1"`` is the client's base URL."""
    from pipecat_speculative.standins.openai_server import OpenAIStandin

    async with OpenAIStandin(profile=latency_profile) as server:
        yield server


@_async_fixture
async def elevenlabs_standin(latency_profile: LatencyProfile) -> AsyncIterator[ElevenLabsStandin]:
    """A started ElevenLabs stand-in (Piper speech when installed); use its ``ws_url``."""
    from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin

    async with ElevenLabsStandin(profile=latency_profile) as server:
        yield server


@_async_fixture
async def pinecone_standin(latency_profile: LatencyProfile) -> AsyncIterator[PineconeStandin]:
    """A started Pinecone stand-in; ``Pinecone(api_key=...).Index(host=server.base_url)``."""
    from pipecat_speculative.standins.pinecone_server import PineconeStandin

    async with PineconeStandin(profile=latency_profile) as server:
        yield server


@_async_fixture
async def standin_openai_llm(openai_standin: OpenAIStandin) -> AsyncIterator[OpenAILLMService]:
    """Pipecat's ``OpenAILLMService`` talking to ``openai_standin``."""
    from pipecat.services.openai.llm import OpenAILLMService

    llm = OpenAILLMService(
        api_key=STANDIN_API_KEY,
        base_url=f"{openai_standin.base_url}/v1",
        settings=OpenAILLMService.Settings(model=STANDIN_LLM_MODEL),
    )
    yield llm
    # The service never closes its client; close the HTTP pool so no socket outlives the test.
    from pipecat_speculative.pipecat_compat import openai_client

    client = openai_client(llm)
    if client is not None:
        await client.close()


@pytest.fixture
def standin_elevenlabs_tts(elevenlabs_standin: ElevenLabsStandin) -> ElevenLabsTTSService:
    """Pipecat's ``ElevenLabsTTSService`` (16 kHz PCM) talking to ``elevenlabs_standin``."""
    from pipecat.services.elevenlabs.tts import ElevenLabsTTSService

    return ElevenLabsTTSService(
        api_key=STANDIN_API_KEY,
        url=elevenlabs_standin.ws_url,
        sample_rate=16000,
        settings=ElevenLabsTTSService.Settings(voice=STANDIN_TTS_VOICE),
    )
