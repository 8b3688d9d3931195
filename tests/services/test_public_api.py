"""Every name in the services' ``__all__`` exists, and the package re-exports each of them."""

import importlib

import pytest

import pipecat_speculative.services as services

MODULES = [
    "pipecat_speculative.services.audio_replay_buffer",
    "pipecat_speculative.services.elevenlabs_http_session",
    "pipecat_speculative.services.llm_stall_timeout",
    "pipecat_speculative.services.speculative_openai_llm_service",
    "pipecat_speculative.services.speculation_aware_llm",
    "pipecat_speculative.services.warm_connection_transport",
    "pipecat_speculative.services.warm_deepgram_stt_service",
    "pipecat_speculative.services.warm_elevenlabs_tts_service",
    "pipecat_speculative.services.warm_openai_llm_mixin",
    "pipecat_speculative.services.warmup_report",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist_and_are_re_exported(name):
    module = importlib.import_module(name)
    assert module.__all__, name
    for attr in module.__all__:
        assert hasattr(module, attr), f"{name}.{attr}"
        if attr != "http_client_family":
            assert getattr(services, attr) is getattr(module, attr), attr


def test_the_package_lists_each_export_once():
    assert sorted(services.__all__) == sorted(set(services.__all__))
    for attr in services.__all__:
        assert hasattr(services, attr), attr


def test_the_warm_transport_matches_the_openai_clients_http_family():
    from openai import DefaultAsyncHttpxClient

    from pipecat_speculative.services.warm_connection_transport import http_client_family

    family = http_client_family()
    assert issubclass(DefaultAsyncHttpxClient, family.AsyncClient)
    assert issubclass(services.WarmConnectionTransport, family.AsyncBaseTransport)
