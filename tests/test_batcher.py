"""The model server's cross-session batching (``lib.model_server.Batcher``) on its own, in one event loop, no Ray.

A lone request is run at once — never held for company, however long the batch wait —; requests queued together or
arriving during a call share the next call; every request gets its own result, as if it had been run alone; an error
reaches exactly the requests of its call; a request whose client hung up is dropped from its call. Nothing here is
timed: each test asserts on what the batcher recorded (calls, their sizes, the calls that waited to fill).
"""

from __future__ import annotations

import asyncio

import pytest

from lib.model_server import Batcher

SAFETY_S = 30.0  # a broken batcher fails the test instead of hanging it


class Recorder:
    """``run`` for a Batcher: each request ``r`` → ``(r, r * r)``; records the requests of every call; ``gate``, when
    set up, holds each call until the test opens it."""

    def __init__(self, gated: bool = False):
        self.calls: list[list[int]] = []
        self.gate = asyncio.Event() if gated else None
        self.started = asyncio.Event()
        self.fail_next = False

    async def __call__(self, requests: list[int]) -> list[tuple[int, int]]:
        self.calls.append(list(requests))
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.fail_next:
            self.fail_next = False
            raise ValueError("the UNet failed")
        return [(r, r * r) for r in requests]


def run(coro):
    async def bounded():
        return await asyncio.wait_for(coro, SAFETY_S)
    return asyncio.run(bounded())


def stop(batcher: Batcher) -> None:
    batcher.worker.cancel()


def test_a_lone_request_runs_at_once_however_long_the_batch_wait():
    async def scenario():
        rec = Recorder()
        b = Batcher(rec, max_batch_size=16, wait_s=3600.0)  # were a lone request held, this would time out
        got = [await b.submit(i) for i in (3, 4, 5)]  # one session: each request waits for its answer
        stop(b)
        return rec, b, got

    rec, b, got = run(scenario())
    assert rec.calls == [[3], [4], [5]]
    assert b.waits == 0
    assert [g.result for g in got] == [(3, 9), (4, 16), (5, 25)]
    assert [g.requests for g in got] == [1, 1, 1]
    assert all(g.queued_s < 3600.0 for g in got)


def test_requests_queued_together_share_one_call_and_each_gets_its_own_result():
    async def scenario():
        rec = Recorder()
        b = Batcher(rec, max_batch_size=16, wait_s=0.05)
        got = await asyncio.gather(*(b.submit(i) for i in range(5)))  # all queued before the worker first runs
        stop(b)
        return rec, b, got

    rec, b, got = run(scenario())
    assert rec.calls == [[0, 1, 2, 3, 4]]
    assert b.waits == 1  # company: the call waited (up to wait_s) for more
    assert [g.result for g in got] == [(i, i * i) for i in range(5)]
    assert {g.requests for g in got} == {5}


def test_requests_arriving_during_a_call_form_the_next_call_up_to_the_batch_size():
    async def scenario():
        rec = Recorder(gated=True)
        b = Batcher(rec, max_batch_size=3, wait_s=0.05)
        first = asyncio.create_task(b.submit(0))
        await rec.started.wait()  # the UNet is busy with request 0 …
        later = [asyncio.create_task(b.submit(i)) for i in range(1, 6)]  # … while five more arrive
        await asyncio.sleep(0)
        rec.gate.set()
        got = await asyncio.gather(first, *later)
        stop(b)
        return rec, got

    rec, got = run(scenario())
    assert rec.calls == [[0], [1, 2, 3], [4, 5]]  # in arrival order, at most max_batch_size per call
    assert [g.result for g in got] == [(i, i * i) for i in range(6)]
    assert [g.requests for g in got] == [1, 3, 3, 3, 2, 2]


def test_an_error_reaches_only_the_requests_of_its_call():
    async def scenario():
        rec = Recorder(gated=True)
        b = Batcher(rec, max_batch_size=16, wait_s=0.0)
        rec.fail_next = True
        failing = [asyncio.create_task(b.submit(i)) for i in (1, 2)]
        await rec.started.wait()
        fine = asyncio.create_task(b.submit(7))
        rec.gate.set()
        outcomes = await asyncio.gather(*failing, fine, return_exceptions=True)
        stop(b)
        return rec, outcomes

    rec, outcomes = run(scenario())
    assert rec.calls == [[1, 2], [7]]
    assert all(isinstance(o, ValueError) and str(o) == "the UNet failed" for o in outcomes[:2])
    assert outcomes[2].result == (7, 49)


def test_a_request_whose_client_hung_up_is_left_out_of_its_call():
    async def scenario():
        rec = Recorder(gated=True)
        b = Batcher(rec, max_batch_size=16, wait_s=0.0)
        first = asyncio.create_task(b.submit(0))
        await rec.started.wait()
        gone = asyncio.create_task(b.submit(1))
        kept = asyncio.create_task(b.submit(2))
        await asyncio.sleep(0)  # both are queued
        gone.cancel()
        rec.gate.set()
        got = await asyncio.gather(first, kept)
        stop(b)
        return rec, got, gone

    rec, got, gone = run(scenario())
    assert gone.cancelled()
    assert rec.calls == [[0], [2]]
    assert [g.result for g in got] == [(0, 0), (2, 4)]


@pytest.mark.parametrize("bad", [0, -1])
def test_a_batch_size_below_one_is_refused(bad):
    with pytest.raises(ValueError, match="max_batch_size"):
        Batcher(Recorder, max_batch_size=bad, wait_s=0.0)
