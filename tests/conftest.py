"""Suite-wide fixtures: a guard that fails any test leaking asyncio tasks."""

import asyncio

import pytest

# Tasks may finish a moment after the test body returns (a cancelled task still has to run its
# cancellation). The guard waits this long for them before it calls them leaked.
_LEAK_GRACE_SECS = 1.0


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail the test if it leaves asyncio tasks running behind it.

    Invariant 6 of the design: no background task outlives the pipeline. A leaked task is how a
    withdrawn inference keeps billing, or a timer fires into the next turn.
    """
    before = set(asyncio.all_tasks())
    yield
    current = asyncio.current_task()

    def leaked() -> set[asyncio.Task]:
        return {t for t in asyncio.all_tasks() - before if t is not current and not t.done()}

    loop = asyncio.get_running_loop()
    deadline = loop.time() + _LEAK_GRACE_SECS
    while leaked() and loop.time() < deadline:  # noqa: ASYNC110 - polling other tasks
        await asyncio.sleep(0.02)
    left = leaked()
    if left:
        for task in left:
            task.cancel()
        names = sorted(t.get_name() + " " + repr(t.get_coro()) for t in left)
        pytest.fail("test leaked asyncio tasks:\n  " + "\n  ".join(names))
