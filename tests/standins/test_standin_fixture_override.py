"""A test module can override ``latency_profile`` to run the fixture stand-ins at another speed."""

import time

import pytest
from openai import AsyncOpenAI

from pipecat_speculative.standins.profile import LatencyProfile


@pytest.fixture
def latency_profile():
    return LatencyProfile.instant(llm_ttft_secs=0.25)


async def test_the_overridden_profile_reaches_the_server(openai_standin):
    assert openai_standin.profile.llm_ttft_secs == 0.25
    client = AsyncOpenAI(api_key="test", base_url=f"{openai_standin.base_url}/v1", max_retries=0)
    start = time.monotonic()
    await client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    elapsed = time.monotonic() - start
    await client.close()
    assert elapsed >= 0.8 * 0.25


async def test_the_pipecat_llm_fixture_uses_the_overridden_server(
    standin_openai_llm, openai_standin
):
    assert str(standin_openai_llm._client.base_url).startswith(openai_standin.base_url)
