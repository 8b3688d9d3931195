"""Scripted conversations with real synthesized user speech, fed to a pipeline in real time."""

from pipecat_speculative.scenarios.scenario import (
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

__all__ = [
    "BUILTIN_SCENARIO_NAMES",
    "Scenario",
    "ScenarioError",
    "SpeechSegment",
    "UserTurn",
    "load_builtin_scenario",
    "load_builtin_suite",
    "load_scenario",
    "load_scenarios",
    "parse_scenario",
]
