"""Loopback stand-ins for OpenAI, ElevenLabs, Deepgram and Pinecone, with latency profiles.

Re-exports are lazy (PEP 562): pytest imports this package on every run because the plugin
module lives in it, so importing the package must not pull in aiohttp, numpy or Pipecat.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DeepgramStandin": "pipecat_speculative.standins.deepgram_server",
    "ElevenLabsStandin": "pipecat_speculative.standins.elevenlabs_server",
    "Fault": "pipecat_speculative.standins.faults",
    "FaultKind": "pipecat_speculative.standins.faults",
    "FaultPlan": "pipecat_speculative.standins.faults",
    "LatencyProfile": "pipecat_speculative.standins.profile",
    "OpenAIStandin": "pipecat_speculative.standins.openai_server",
    "PineconeStandin": "pipecat_speculative.standins.pinecone_server",
    "StandinServer": "pipecat_speculative.standins.base",
    "StandinStack": "pipecat_speculative.standins.standin_stack",
}

__all__ = [
    "DeepgramStandin",
    "ElevenLabsStandin",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "LatencyProfile",
    "OpenAIStandin",
    "PineconeStandin",
    "StandinServer",
    "StandinStack",
]

if TYPE_CHECKING:
    from pipecat_speculative.standins.base import StandinServer
    from pipecat_speculative.standins.deepgram_server import DeepgramStandin
    from pipecat_speculative.standins.elevenlabs_server import ElevenLabsStandin
    from pipecat_speculative.standins.faults import Fault, FaultKind, FaultPlan
    from pipecat_speculative.standins.openai_server import OpenAIStandin
    from pipecat_speculative.standins.pinecone_server import PineconeStandin
    from pipecat_speculative.standins.profile import LatencyProfile
    from pipecat_speculative.standins.standin_stack import StandinStack


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
