"""Transports for running a bot without devices: a scripted microphone and a speakerless output.

Re-exports are lazy (PEP 562): :class:`ScenarioAudioInput` plays rendered scenarios, which need
the ``cli`` extra, while :class:`PacedOutputTransport` needs only the core install.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "PacedOutputTransport": "pipecat_speculative.transports.paced_output_transport",
    "ScenarioAudioInput": "pipecat_speculative.transports.scenario_audio_input",
}

__all__ = ["PacedOutputTransport", "ScenarioAudioInput"]

if TYPE_CHECKING:
    from pipecat_speculative.transports.paced_output_transport import PacedOutputTransport
    from pipecat_speculative.transports.scenario_audio_input import ScenarioAudioInput


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
