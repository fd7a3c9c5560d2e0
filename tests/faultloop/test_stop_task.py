"""stop_task: a background task that loses its cancel (nats-py swallows a CancelledError inside
some calls) is still stopped; the stop never waits for ever."""

from __future__ import annotations

import asyncio
import logging

from faultloop.worker import stop_task


async def test_a_task_that_swallows_its_first_cancel_is_still_stopped():
    swallowed = []

    async def loop_that_eats_one_cancel():
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if swallowed:
                    raise
                swallowed.append(True)  # as nats-py does around a flush: the loop goes on

    task = asyncio.create_task(loop_that_eats_one_cancel())
    await asyncio.sleep(0)
    await asyncio.wait_for(stop_task(task), 5)
    assert swallowed == [True] and task.cancelled()


async def test_a_task_that_never_ends_is_left_behind_after_the_grace_and_named(caplog):
    release = asyncio.Event()

    async def stubborn():
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn(), name="stubborn loop")
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await asyncio.wait_for(stop_task(task, grace_s=0.5), 5)
    assert not task.done()
    assert "stubborn loop did not stop within 0.5 s" in caplog.text
    release.set()
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.done()


async def test_a_task_that_failed_is_logged_not_raised(caplog):
    async def fails():
        raise RuntimeError("disk on fire")

    task = asyncio.create_task(fails(), name="failing loop")
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.ERROR):
        await stop_task(task)
    assert "failing loop ended with RuntimeError: disk on fire" in caplog.text


async def test_no_task_is_nothing_to_stop():
    await stop_task(None)
