"""The Pipecat internals the plugin relies on still exist and behave as assumed.

``pipecat_speculative.pipecat_compat`` is the only module allowed to touch Pipecat's private names.
These tests check each name against the installed Pipecat (so an upgrade fails here, naming what
moved) and fail any other module of the package that reaches for a private Pipecat name.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from pipecat.frames.frames import UserStartedSpeakingFrame, UserStoppedSpeakingFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.deepgram.stt import DeepgramSTTService
from pipecat.services.elevenlabs.tts import ElevenLabsTTSService
from pipecat.services.openai.llm import OpenAILLMService
from pipecat.turns.speculation_gate import SpeculationGate
from pipecat.utils.base_object import BaseObject

import pipecat_speculative
from pipecat_speculative import pipecat_compat as compat

PACKAGE_DIR = Path(pipecat_speculative.__file__).parent
COMPAT_FILE = PACKAGE_DIR / "pipecat_compat.py"

# Files whose owners are rewriting them in parallel; each still reaches Pipecat internals directly
# and moves to the compat functions with its rewrite. Nothing may be added here.
PENDING_MIGRATION: dict[str, set[str]] = {
    "turns/speculative_user_turn_stop_strategy.py": {
        "_register_event_handler",
        "_call_event_handler",
    },
    "pipeline_builder.py": {"_client"},
}

# Private names of other libraries, not Pipecat's: httpx's transport keeps its connection pool in
# ``_pool``; the warm transport reads it defensively and falls back when it is missing.
OTHER_LIBRARIES: dict[str, set[str]] = {"services/warm_connection_transport.py": {"_pool"}}


def resolve(path: str) -> type:
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class _Events(BaseObject):
    pass


@pytest.fixture
def llm():
    return OpenAILLMService(api_key="test", settings=OpenAILLMService.Settings(model="m"))


@pytest.fixture
def tts():
    return ElevenLabsTTSService(
        api_key="test", settings=ElevenLabsTTSService.Settings(voice="v"), sample_rate=16000
    )


@pytest.fixture
def instances(llm, tts):
    """One instance per owner class of a private attribute, built without a network."""
    return {
        "pipecat.services.llm_service.LLMService": llm,
        "pipecat.services.openai.base_llm.BaseOpenAILLMService": llm,
        compat._DEEPGRAM: DeepgramSTTService(api_key="test"),
        "pipecat.services.websocket_service.WebsocketService": tts,
        "pipecat.services.tts_service.TTSService": tts,
        "pipecat.utils.base_object.BaseObject": _Events(),
    }


# -- every name exists --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "name"), compat.PRIVATE_ATTRIBUTES, ids=[n for _, n in compat.PRIVATE_ATTRIBUTES]
)
def test_every_private_attribute_exists_on_its_owner(owner, name, instances):
    instance = instances[owner]
    assert isinstance(instance, resolve(owner))
    assert hasattr(instance, name), f"{owner}.{name} is gone: update pipecat_compat"


@pytest.mark.parametrize("hook", compat.OVERRIDDEN_HOOKS, ids=lambda h: h.name)
def test_every_overridden_hook_exists_with_the_assumed_signature(hook):
    method = getattr(resolve(hook.owner), hook.name, None)
    assert method is not None, f"{hook.owner}.{hook.name} is gone: the override is dead code"
    assert tuple(inspect.signature(method).parameters) == hook.params
    assert inspect.iscoroutinefunction(method) is hook.is_async
    assert hook.name in vars(resolve(hook.overridden_by)), "listed but not overridden"


# -- and behaves as assumed ---------------------------------------------------------------------


def test_the_llm_service_owns_a_speculation_gate(llm):
    assert isinstance(compat.speculation_gate(llm), SpeculationGate)


def test_marking_a_turn_open_makes_the_gate_hold_the_next_speculation(llm):
    gate = compat.speculation_gate(llm)
    gate.process(UserStartedSpeakingFrame(), FrameDirection.DOWNSTREAM)
    gate.process(UserStoppedSpeakingFrame(), FrameDirection.DOWNSTREAM)
    gate.begin_speculation(True)
    assert not gate.is_speculating  # the turn it saw last had ended
    compat.mark_turn_open_at_gate(llm)
    gate.begin_speculation(True)
    assert gate.is_speculating


def test_the_openai_client_is_the_async_openai_client(llm):
    from openai import AsyncOpenAI

    assert isinstance(compat.openai_client(llm), AsyncOpenAI)
    assert compat.openai_client(object()) is None


def test_connection_and_socket_are_none_before_connecting(tts):
    assert compat.deepgram_connection(DeepgramSTTService(api_key="test")) is None
    assert compat.tts_websocket(tts) is None
    assert compat.tts_turn_context_id(tts) is None
    assert isinstance(compat.tts_reuses_turn_context_id(tts), bool)


async def test_sync_event_handlers_run_inline_in_order():
    obj = _Events()
    seen = []
    compat.register_event_handler(obj, "on_thing", sync=True)

    @obj.event_handler("on_thing")
    async def first(_obj, value):
        seen.append(("first", value))

    @obj.event_handler("on_thing")
    async def second(_obj, value):
        seen.append(("second", value))

    await compat.call_event_handler(obj, "on_thing", 7)
    assert seen == [("first", 7), ("second", 7)]


# -- nothing else touches them ------------------------------------------------------------------


def _names_defined_by_the_package() -> set[str]:
    defined: set[str] = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                if isinstance(node.value, ast.Name) and node.value.id == "self":
                    defined.add(node.attr)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined.update(t.id for t in targets if isinstance(t, ast.Name))
    return defined


def _foreign_private_names(path: Path, ours: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        name = None
        if isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "hasattr", "setattr"}
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name and name.startswith("_") and not name.startswith("__") and name not in ours:
            found.add(name)
    return found


def test_no_module_but_the_compat_one_reads_a_private_pipecat_attribute():
    ours = _names_defined_by_the_package() - {name for _, name in compat.PRIVATE_ATTRIBUTES}
    offenders = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path == COMPAT_FILE:
            continue
        rel = path.relative_to(PACKAGE_DIR).as_posix()
        names = _foreign_private_names(path, ours)
        names -= PENDING_MIGRATION.get(rel, set()) | OTHER_LIBRARIES.get(rel, set())
        if names:
            offenders[rel] = sorted(names)
    assert offenders == {}, "go through pipecat_speculative.pipecat_compat"


def test_the_pending_list_only_shrinks():
    ours = _names_defined_by_the_package() - {name for _, name in compat.PRIVATE_ATTRIBUTES}
    for rel, names in PENDING_MIGRATION.items():
        still_used = _foreign_private_names(PACKAGE_DIR / rel, ours)
        assert names <= still_used, f"{rel} no longer uses {names - still_used}: drop them here"


def _plugin_classes():
    for info in pkgutil.walk_packages(pipecat_speculative.__path__, "pipecat_speculative."):
        if info.name.endswith(("pytest_plugin", "__main__")):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_every_private_pipecat_method_a_plugin_class_overrides_is_listed():
    listed = {(hook.overridden_by, hook.name) for hook in compat.OVERRIDDEN_HOOKS}
    unlisted = set()
    for cls in _plugin_classes():
        pipecat_bases = [b for b in cls.__mro__ if b.__module__.split(".")[0] == "pipecat"]
        for ours in cls.__mro__:
            if not ours.__module__.startswith("pipecat_speculative"):
                continue
            for name in vars(ours):
                if not name.startswith("_") or name.startswith("__") or name == "_abc_impl":
                    continue
                if any(name in vars(base) for base in pipecat_bases):
                    path = f"{ours.__module__}.{ours.__qualname__}"
                    if (path, name) not in listed:
                        unlisted.add((path, name))
    assert unlisted == set(), "list them in pipecat_compat.OVERRIDDEN_HOOKS"
