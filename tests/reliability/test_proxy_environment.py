"""The warm OpenAI transport honours the proxy environment httpx would (it replaces httpx's)."""

import pytest

from pipecat_speculative.pipecat_compat import openai_client
from pipecat_speculative.services.speculative_openai_llm_service import SpeculativeOpenAILLMService
from pipecat_speculative.services.warm_openai_llm_mixin import _environment_proxy

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture(autouse=True)
def clean_proxy_env(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.delenv("REQUEST_METHOD", raising=False)  # urllib ignores HTTP_PROXY under CGI


def test_all_proxy_is_used_when_no_scheme_proxy_is_set(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    assert _environment_proxy("https://api.openai.com/v1") == "http://proxy.internal:3128"


def test_the_scheme_proxy_wins_over_all_proxy_and_lower_case_is_read(monkeypatch):
    monkeypatch.setenv("all_proxy", "http://all.internal:3128")
    monkeypatch.setenv("https_proxy", "http://https.internal:3128")
    assert _environment_proxy("https://api.openai.com/v1") == "http://https.internal:3128"
    assert _environment_proxy("http://gateway.example/v1") == "http://all.internal:3128"


def test_no_proxy_hosts_and_loopback_go_direct(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.openai.com,.corp.example")
    assert _environment_proxy("https://api.openai.com/v1") is None
    assert _environment_proxy("https://llm.corp.example/v1") is None
    assert _environment_proxy("http://127.0.0.1:8000/v1") is None
    assert _environment_proxy("https://api.other.example/v1") == "http://proxy.internal:3128"


async def test_the_service_gives_the_environment_proxy_to_its_warm_transport(monkeypatch):
    monkeypatch.setenv("ALL_PROXY", "http://proxy.internal:3128")
    llm = SpeculativeOpenAILLMService(
        api_key="k",
        base_url="https://api.openai.example/v1",
        settings=SpeculativeOpenAILLMService.Settings(model="gpt-4o-mini"),
    )
    assert llm._warm_transport is not None
    assert llm._warm_transport._proxy == "http://proxy.internal:3128"
    await openai_client(llm).close()
