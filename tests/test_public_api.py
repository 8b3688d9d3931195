"""Keep the public API honest: every exported name exists, lists are sorted, modules declare __all__."""

import importlib
import pkgutil

import pytest

import pipecat_speculative

PACKAGES = [
    "pipecat_speculative",
    "pipecat_speculative.turns",
    "pipecat_speculative.standins",
    "pipecat_speculative.transports",
    "pipecat_speculative.bot",
    "pipecat_speculative.testing",
    "pipecat_speculative.profiles",
]


@pytest.mark.parametrize("package", PACKAGES)
def test_every_exported_name_resolves_and_the_list_is_sorted(package):
    module = importlib.import_module(package)
    assert module.__all__ == sorted(module.__all__, key=lambda n: (n[0].islower(), n))
    for name in module.__all__:
        assert getattr(module, name) is not None, name


def test_every_public_module_declares_all_and_its_names_exist():
    missing = []
    for info in pkgutil.walk_packages(pipecat_speculative.__path__, "pipecat_speculative."):
        if any(part.startswith("_") for part in info.name.split(".")[1:]):
            continue
        if info.name.endswith("pytest_plugin"):
            continue
        module = importlib.import_module(info.name)
        names = getattr(module, "__all__", None)
        if names is None:
            if not info.ispkg:
                missing.append(info.name)
            continue
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
    assert missing == []


def test_the_top_level_import_is_light():
    import subprocess
    import sys

    code = "import sys, pipecat_speculative; print('pipecat' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
