"""The OpenAI, Deepgram and ElevenLabs stand-ins as one stack, for a bot that runs offline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from pipecat_speculative.standins.profile import LatencyProfile

if TYPE_CHECKING:
    from pipecat_speculative.pipeline_builder import ServiceEndpoints

__all__ = ["StandinStack"]


class StandinStack:
    """The OpenAI, Deepgram and ElevenLabs stand-ins, started together on one latency profile.

    Use as an async context manager; :attr:`endpoints` points a bot at them.

    Args:
        profile: The latency profile every stand-in uses.
        speech: The ElevenLabs stand-in's speech engine (``"auto"``: Piper when installed).
    """

    def __init__(self, profile: LatencyProfile, *, speech: str = "auto"):
        from pipecat_speculative.standins.deepgram_server import DeepgramStandin
        from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
        from pipecat_speculative.standins.openai_server import OpenAIStandin

        self.profile = profile
        self.openai = OpenAIStandin(profile=profile)
        self.deepgram = DeepgramStandin(profile=profile)
        self.elevenlabs = ElevenLabsStandin(profile=profile, speech=speech)  # type: ignore[arg-type]

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

    async def start(self):
        """Start every stand-in (loads the TTS speech engine)."""
        await asyncio.gather(self.openai.start(), self.deepgram.start(), self.elevenlabs.start())

    async def stop(self):
        """Stop every stand-in."""
        await asyncio.gather(
            self.openai.stop(), self.deepgram.stop(), self.elevenlabs.stop(), return_exceptions=True
        )
