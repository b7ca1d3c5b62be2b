"""ProcessTask: one task at a time, started again once it ended or on another event loop."""

import asyncio

from bokehsite.process_task import ProcessTask


def test_one_task_per_loop_started_again_when_ended_cancelled_or_on_a_new_loop():
    runs: list[asyncio.AbstractEventLoop] = []
    finish = None

    async def run() -> None:
        runs.append(asyncio.get_running_loop())
        await finish.wait()

    task = ProcessTask(run)

    async def on_a_loop() -> None:
        nonlocal finish
        finish = asyncio.Event()
        before = len(runs)
        task.ensure()
        task.ensure()  # it runs already: no second one
        await asyncio.sleep(0)
        assert len(runs) == before + 1
        finish.set()  # it ends: the next ensure() starts another
        await asyncio.sleep(0)
        finish.clear()
        task.ensure()
        await asyncio.sleep(0)
        assert len(runs) == before + 2
        task.cancel()
        task.cancel()
        task.ensure()
        await asyncio.sleep(0)
        assert len(runs) == before + 3
        finish.set()
        await asyncio.sleep(0)

    asyncio.run(on_a_loop())
    assert len(runs) == 3
    asyncio.run(on_a_loop())  # a new loop, as each test has, gets its own
    assert len(runs) == 6 and runs[3] is not runs[0]
