"""The rag package re-exports each module's public names, sorted, and every one exists."""

from __future__ import annotations

import importlib
import pkgutil

import pipecat_speculative.rag as rag


def test_every_exported_name_resolves_and_the_list_is_sorted():
    assert rag.__all__ == sorted(rag.__all__, key=lambda n: (n[0].islower(), n))
    for name in rag.__all__:
        assert getattr(rag, name) is not None, name


def test_each_module_declares_all_and_its_classes_are_re_exported():
    for info in pkgutil.iter_modules(rag.__path__, "pipecat_speculative.rag."):
        module = importlib.import_module(info.name)
        names = module.__all__
        for name in names:
            assert hasattr(module, name), f"{info.name}.{name}"
            if (
                name[0].isupper()
                and not name.isupper()
                and info.name != "pipecat_speculative.rag.ingest"
            ):
                assert getattr(rag, name, None) is getattr(module, name), name
