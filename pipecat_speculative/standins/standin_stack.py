"""The OpenAI, Deepgram, ElevenLabs (and Pinecone) stand-ins as one stack, for an offline bot."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pipecat_speculative.standins.profile import LatencyProfile

if TYPE_CHECKING:
    from pipecat_speculative.pipeline_builder import ServiceEndpoints
    from pipecat_speculative.standins.pinecone_server import PineconeStandin

__all__ = ["StandinStack"]


class StandinStack:
    """The OpenAI, Deepgram and ElevenLabs stand-ins, started together on one latency profile.

    Use as an async context manager; :attr:`endpoints` points a bot at them.

    Args:
        profile: The latency profile every stand-in uses.
        speech: The ElevenLabs stand-in's speech engine (``"auto"``: Piper when installed).
        pinecone: Also start a Pinecone stand-in (:attr:`pinecone`), for a bot that retrieves
            through the real pinecone SDK; its queries take the profile's ``rag_query_secs``.
            Off by default: a bot without RAG does not need a fourth server.
    """

    def __init__(self, profile: LatencyProfile, *, speech: str = "auto", pinecone: bool = False):
        from pipecat_speculative.standins.deepgram_server import DeepgramStandin
        from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
        from pipecat_speculative.standins.openai_server import OpenAIStandin

        self.profile = profile
        self.openai = OpenAIStandin(profile=profile)
        self.deepgram = DeepgramStandin(profile=profile)
        self.elevenlabs = ElevenLabsStandin(profile=profile, speech=speech)  # type: ignore[arg-type]
        self.pinecone: PineconeStandin | None = None
        if pinecone:
            from pipecat_speculative.standins.pinecone_server import PineconeStandin

            self.pinecone = PineconeStandin(profile=profile)

    @property
    def endpoints(self) -> ServiceEndpoints:
        """Where a bot finds the started stand-ins."""
        from pipecat_speculative.pipeline_builder import ServiceEndpoints

        return ServiceEndpoints.for_standins(
            openai=self.openai, deepgram=self.deepgram, elevenlabs=self.elevenlabs
        )

    async def __aenter__(self) -> StandinStack:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _servers(self) -> list:
        servers: list = [self.openai, self.deepgram, self.elevenlabs]
        if self.pinecone is not None:
            servers.append(self.pinecone)
        return servers

    async def start(self):
        """Start every stand-in (loads the TTS speech engine)."""
        await asyncio.gather(*(s.start() for s in self._servers()))

    async def stop(self):
        """Stop every stand-in."""
        await asyncio.gather(*(s.stop() for s in self._servers()), return_exceptions=True)
