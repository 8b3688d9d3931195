"""Scripted conversations with real synthesized user speech, fed to a pipeline in real time.

- :mod:`.scenario`: the YAML format, its loader and the built-in suite.
- :mod:`.speech`: Piper speech for the simulated user, cached on disk.
- :mod:`.player`: rendering turns (audio, STT script, ground truth) and what playing them did.

The real-time microphone that plays them is
:class:`pipecat_speculative.transports.ScenarioAudioInput`.
"""

from pipecat_speculative.scenarios.player import (
    RenderedScenario,
    RenderedTurn,
    SegmentTruth,
    TurnPlayback,
    render_scenario,
    render_turn,
)
from pipecat_speculative.scenarios.scenario import (
    BUILTIN_EXTRA_SCENARIO_NAMES,
    BUILTIN_SCENARIO_NAMES,
    Scenario,
    ScenarioError,
    SpeechSegment,
    UserTurn,
    load_builtin_scenario,
    load_builtin_suite,
    load_scenario,
    load_scenarios,
    parse_scenario,
)
from pipecat_speculative.scenarios.speech import (
    PiperSpeechSynthesizer,
    SpeechSynthesisUnavailableError,
    SynthesizedSpeech,
    WordTiming,
)

__all__ = [
    "BUILTIN_EXTRA_SCENARIO_NAMES",
    "BUILTIN_SCENARIO_NAMES",
    "PiperSpeechSynthesizer",
    "RenderedScenario",
    "RenderedTurn",
    "Scenario",
    "ScenarioError",
    "SegmentTruth",
    "SpeechSegment",
    "SpeechSynthesisUnavailableError",
    "SynthesizedSpeech",
    "TurnPlayback",
    "UserTurn",
    "WordTiming",
    "load_builtin_scenario",
    "load_builtin_suite",
    "load_scenario",
    "load_scenarios",
    "parse_scenario",
    "render_scenario",
    "render_turn",
]
