"""The scenario format: scripted conversations a simulated user speaks into a bot.

A scenario is what the tests, the demo and the bench replay. It says what the user says, where
they pause inside an utterance (thinking aloud, a fast talker's short breaths) and when they are
really done, which is the ground truth every turn-taking decision is judged against.

The YAML format (one scenario per file)::

    name: reference_conversation          # optional, defaults to the file name
    description: Hello, thinking aloud, then a RAG question.
    profile: reference                    # a latency profile name, or a mapping:
    # profile: {base: reference, stt_final_delay_secs: 0.3}   (LatencyProfile fields)
    gap_after_bot_ms: 800                 # the user waits this long after the bot finished
    speaking_rate: 1.0                    # >1 speaks faster (Piper length scale = 1/rate)
    turns:
      - segments:
          - text: Hello
      - notes: the user keeps thinking aloud
        needs_rag: false
        segments:
          - {text: I want to memorize the document that I have, pause_after_ms: 900}
          - {text: with you, like, the key points}

Each turn is a list of speech segments. ``pause_after_ms`` is the silence between a segment and
the next one *inside the same turn*; the last segment of a turn takes none, because the user is
done after it (the silence that follows is the bot's turn, then ``gap_after_bot_ms``). Unknown
keys are errors, so a typo (``pause_ms``) cannot silently become a zero pause.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from pipecat_speculative.standins.profile import PROFILE_NAMES, LatencyProfile

__all__ = [
    "DEFAULT_GAP_AFTER_BOT_MS",
    "DEFAULT_PROFILE",
    "PROFILE_NAMES",
    "BUILTIN_EXTRA_SCENARIO_NAMES",
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


DEFAULT_PROFILE = "reference"
"""Latency profile used when a scenario names none: the one calibrated to the reference log."""

DEFAULT_GAP_AFTER_BOT_MS = 600
"""How long the simulated user waits after the bot stopped speaking before the next turn."""

BUILTIN_SCENARIO_NAMES = (
    "cold_first_turn",
    "one_sentence_question",
    "fast_talker",
    "reference_conversation",
    "long_session",
)
"""The built-in suite, in the order it is replayed."""

BUILTIN_EXTRA_SCENARIO_NAMES = (
    "hesitant_user_first_call",
    "hesitant_user_return_call",
)
"""Built-in scenarios outside the suite, loadable by name: the two calls of one hesitant speaker
that ``bench --returning-user`` plays (the first call teaches a profile, the second is played
with and without it)."""

_MAX_PAUSE_MS = 30_000
_MAX_GAP_MS = 60_000
_SPEAKING_RATE_RANGE = (0.5, 2.0)


class ScenarioError(ValueError):
    """A scenario file or mapping is invalid.

    The message names the source (file) and the field path (``turns[1].segments[0].text``) so
    the author can fix it without reading the loader.

    Attributes:
        source: The file (or ``<mapping>``) the scenario came from.
        field: Dotted path of the offending field, empty for the document itself.
        reason: What is wrong with it.
    """

    def __init__(self, source: str, field: str, reason: str):
        self.source = source
        self.field = field
        self.reason = reason
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {reason}")


@dataclass(frozen=True)
class SpeechSegment:
    """One stretch of continuous speech.

    Parameters:
        text: What the user says, as it should appear in the transcript.
        pause_after_ms: Silence after this segment before the next one of the same turn. Zero
            for the last segment of a turn (the user is done after it).
    """

    text: str
    pause_after_ms: int = 0


@dataclass(frozen=True)
class UserTurn:
    """What the user says before they are done and wait for the bot.

    Parameters:
        segments: The speech segments, in order. The user is done after the last one.
        needs_rag: Whether a correct answer needs retrieval (a question about a document).
        notes: Free text for humans (why this turn exists).
    """

    segments: tuple[SpeechSegment, ...]
    needs_rag: bool = False
    notes: str | None = None

    @property
    def text(self) -> str:
        """The whole turn's words, segments joined with a space."""
        return " ".join(s.text for s in self.segments)


@dataclass(frozen=True)
class Scenario:
    """A scripted conversation.

    Parameters:
        name: Identifier (file name by default).
        turns: The user turns, in order.
        description: Free text for humans.
        profile: Name of the latency profile the stand-ins run with.
        profile_overrides: Fields of the named profile to override (name → value).
        gap_after_bot_ms: Silence between the end of the bot's answer and the next user turn.
        speaking_rate: Speech speed relative to the voice's natural rate (>1 is faster).
        source: Where the scenario was loaded from (for error messages and reports).
    """

    name: str
    turns: tuple[UserTurn, ...]
    description: str = ""
    profile: str = DEFAULT_PROFILE
    profile_overrides: Mapping[str, Any] = field(default_factory=dict)
    gap_after_bot_ms: int = DEFAULT_GAP_AFTER_BOT_MS
    speaking_rate: float = 1.0
    source: str = "<mapping>"

    def latency_profile(self) -> LatencyProfile:
        """Build the stand-ins' latency profile this scenario asks for.

        Returns:
            A new :class:`LatencyProfile` (its jitter RNG starts from its seed): the named
            profile with the overrides applied.
        """
        return _build_profile(self.profile, self.profile_overrides, self.source)


def _build_profile(name: str, overrides: Mapping[str, Any], source: str) -> LatencyProfile:
    try:
        return LatencyProfile.from_dict({"base": name, **overrides})
    except (TypeError, ValueError) as e:
        raise ScenarioError(source, "profile", str(e)) from e


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_SCENARIO_KEYS = {
    "name",
    "description",
    "profile",
    "gap_after_bot_ms",
    "speaking_rate",
    "turns",
}
_TURN_KEYS = {"segments", "needs_rag", "notes"}
_SEGMENT_KEYS = {"text", "pause_after_ms"}


class _Parser:
    def __init__(self, source: str):
        self.source = source

    def error(self, path: str, reason: str) -> ScenarioError:
        return ScenarioError(self.source, path, reason)

    def mapping(self, value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected a mapping, got {type(value).__name__}")
        for key in value:
            if not isinstance(key, str) or key not in allowed:
                raise self.error(
                    f"{path}.{key}" if path else str(key),
                    f"unknown field (allowed: {', '.join(sorted(allowed))})",
                )
        return value

    def string(self, value: Any, path: str, *, allow_empty: bool = False) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {type(value).__name__}")
        if not allow_empty and not value.strip():
            raise self.error(path, "must not be empty")
        return value.strip()

    def boolean(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.error(path, f"expected true or false, got {value!r}")
        return value

    def int_ms(self, value: Any, path: str, *, maximum: int) -> int:
        # bool is an int subclass: `pause_after_ms: yes` must not become 1 ms.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected a whole number of milliseconds, got {value!r}")
        if value < 0 or value > maximum:
            raise self.error(path, f"must be between 0 and {maximum} ms, got {value}")
        return value

    def segment(self, value: Any, path: str, *, last: bool) -> SpeechSegment:
        if isinstance(value, str):
            value = {"text": value}
        data = self.mapping(value, path, _SEGMENT_KEYS)
        if "text" not in data:
            raise self.error(f"{path}.text", "missing")
        text = self.string(data["text"], f"{path}.text")
        if last:
            if data.get("pause_after_ms", 0) not in (0, None):
                raise self.error(
                    f"{path}.pause_after_ms",
                    "the last segment ends the turn; the silence after it belongs to the bot "
                    "(use the scenario's gap_after_bot_ms)",
                )
            return SpeechSegment(text=text, pause_after_ms=0)
        if "pause_after_ms" not in data:
            raise self.error(
                f"{path}.pause_after_ms",
                "missing: a segment followed by another one in the same turn needs its pause",
            )
        pause = self.int_ms(data["pause_after_ms"], f"{path}.pause_after_ms", maximum=_MAX_PAUSE_MS)
        if pause == 0:
            raise self.error(
                f"{path}.pause_after_ms",
                "must be > 0 (without a pause, write both segments as one text)",
            )
        return SpeechSegment(text=text, pause_after_ms=pause)

    def turn(self, value: Any, path: str) -> UserTurn:
        data = self.mapping(value, path, _TURN_KEYS)
        raw_segments = data.get("segments")
        if raw_segments is None:
            raise self.error(f"{path}.segments", "missing")
        if not isinstance(raw_segments, list) or not raw_segments:
            raise self.error(f"{path}.segments", "expected a non-empty list of speech segments")
        segments = tuple(
            self.segment(s, f"{path}.segments[{i}]", last=i == len(raw_segments) - 1)
            for i, s in enumerate(raw_segments)
        )
        needs_rag = self.boolean(data.get("needs_rag", False), f"{path}.needs_rag")
        notes = None
        if data.get("notes") is not None:
            notes = self.string(data["notes"], f"{path}.notes", allow_empty=True)
        return UserTurn(segments=segments, needs_rag=needs_rag, notes=notes)

    def profile(self, value: Any) -> tuple[str, dict[str, Any]]:
        if value is None:
            return DEFAULT_PROFILE, {}
        if isinstance(value, str):
            name, overrides = self.string(value, "profile"), {}
        elif isinstance(value, Mapping):
            overrides = dict(value)
            base = overrides.pop("base", DEFAULT_PROFILE)
            name = self.string(base, "profile.base")
        else:
            raise self.error("profile", "expected a profile name or a mapping of overrides")
        if name not in PROFILE_NAMES:
            field_path = "profile.base" if isinstance(value, Mapping) else "profile"
            raise self.error(
                field_path, f"unknown profile {name!r} (have: {', '.join(PROFILE_NAMES)})"
            )
        _build_profile(name, overrides, self.source)  # unknown or invalid fields fail here
        return name, overrides

    def scenario(self, value: Any, default_name: str) -> Scenario:
        data = self.mapping(value, "", _SCENARIO_KEYS)
        name = self.string(data.get("name", default_name), "name")
        description = self.string(data.get("description", ""), "description", allow_empty=True)
        profile, overrides = self.profile(data.get("profile"))
        gap = self.int_ms(
            data.get("gap_after_bot_ms", DEFAULT_GAP_AFTER_BOT_MS),
            "gap_after_bot_ms",
            maximum=_MAX_GAP_MS,
        )
        rate = data.get("speaking_rate", 1.0)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)):
            raise self.error("speaking_rate", f"expected a number, got {rate!r}")
        low, high = _SPEAKING_RATE_RANGE
        if not low <= rate <= high:
            raise self.error("speaking_rate", f"must be between {low} and {high}, got {rate}")
        raw_turns = data.get("turns")
        if raw_turns is None:
            raise self.error("turns", "missing")
        if not isinstance(raw_turns, list) or not raw_turns:
            raise self.error("turns", "expected a non-empty list of user turns")
        turns = tuple(self.turn(t, f"turns[{i}]") for i, t in enumerate(raw_turns))
        return Scenario(
            name=name,
            turns=turns,
            description=description,
            profile=profile,
            profile_overrides=overrides,
            gap_after_bot_ms=gap,
            speaking_rate=float(rate),
            source=self.source,
        )


def parse_scenario(data: Any, *, source: str = "<mapping>", default_name: str = "") -> Scenario:
    """Validate a scenario given as plain data (what ``yaml.safe_load`` returns).

    Args:
        data: The scenario mapping.
        source: Where it came from, used in error messages.
        default_name: Name used when the mapping has no ``name``.

    Returns:
        The validated scenario.

    Raises:
        ScenarioError: On the first invalid field, naming it.
    """
    return _Parser(source).scenario(data, default_name or "scenario")


def _load_text(text: str, source: str, default_name: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ScenarioError(source, "", f"not valid YAML: {e}") from e
    if data is None:
        raise ScenarioError(source, "", "the file is empty")
    return parse_scenario(data, source=source, default_name=default_name)


def load_scenario(path: str | Path) -> Scenario:
    """Load and validate one scenario file.

    Args:
        path: A ``.yaml`` / ``.yml`` file.

    Returns:
        The scenario; its ``name`` defaults to the file name without extension.

    Raises:
        ScenarioError: If the file cannot be read or is invalid.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ScenarioError(str(path), "", f"cannot read: {e.strerror or e}") from e
    return _load_text(text, str(path), path.stem)


def load_scenarios(directory: str | Path) -> list[Scenario]:
    """Load every scenario file (``*.yaml``, ``*.yml``) of a directory, sorted by file name.

    Args:
        directory: The directory to read (not recursive).

    Returns:
        The scenarios.

    Raises:
        ScenarioError: If the directory is missing or holds no scenario, if any file is
            invalid, or if two scenarios share a name.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ScenarioError(str(directory), "", "not a directory")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    if not files:
        raise ScenarioError(str(directory), "", "no scenario files (*.yaml) found")
    scenarios = [load_scenario(p) for p in files]
    _check_unique_names(scenarios)
    return scenarios


def _check_unique_names(scenarios: list[Scenario]) -> None:
    seen: dict[str, str] = {}
    for s in scenarios:
        if s.name in seen:
            raise ScenarioError(s.source, "name", f"{s.name!r} is also the name of {seen[s.name]}")
        seen[s.name] = s.source


def load_builtin_scenario(name: str) -> Scenario:
    """Load one scenario of the built-in suite by name.

    Args:
        name: One of ``BUILTIN_SCENARIO_NAMES`` or ``BUILTIN_EXTRA_SCENARIO_NAMES``.

    Returns:
        The scenario.

    Raises:
        ScenarioError: If there is no built-in scenario of that name.
    """
    known = (*BUILTIN_SCENARIO_NAMES, *BUILTIN_EXTRA_SCENARIO_NAMES)
    if name not in known:
        raise ScenarioError(
            "<builtin>", "", f"no built-in scenario {name!r} (have: {', '.join(known)})"
        )
    resource = (
        resources.files("pipecat_speculative.scenarios")
        .joinpath("builtin")
        .joinpath(f"{name}.yaml")
    )
    return _load_text(resource.read_text(encoding="utf-8"), f"<builtin>/{name}.yaml", name)


def load_builtin_suite() -> list[Scenario]:
    """Load the built-in suite shipped with the package, in ``BUILTIN_SCENARIO_NAMES`` order.

    Returns:
        The scenarios.
    """
    return [load_builtin_scenario(name) for name in BUILTIN_SCENARIO_NAMES]
