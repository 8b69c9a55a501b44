"""The model of the app's MT queue that holds sends under its mark (campaign.sending.queue)."""

from __future__ import annotations

import asyncio

from campaign.sending.queue import QueueGate, Reading, waiting


def test_the_queue_drains_at_the_outbound_rate_and_never_below_empty() -> None:
    assert waiting(1_000, 20, 10.0) == 800
    assert waiting(100, 20, 10.0) == 0  # empty after 5 s: the other 5 s are no credit


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_the_gate_lets_in_up_to_the_mark_then_at_the_drain_rate() -> None:
    clock, stop = _Clock(), asyncio.Event()
    gate = QueueGate(stop, clock)
    await gate.admit(10_000)  # no reading: open
    gate.update(Reading(size=200, limit=1_000, outbound=100), share=0.8, part=1.0)
    assert gate.rate() == 100
    for _ in range(600):  # 200 + 600 = the mark, 800
        await gate.admit(1)
    assert gate.near()
    waiter = asyncio.create_task(gate.admit(50))
    await asyncio.sleep(0.01)
    assert not waiter.done()  # full to the mark
    clock.now = 0.5  # 50 drained
    await asyncio.wait_for(waiter, timeout=2)
    assert gate.admitted == 650


async def test_each_worker_models_its_part_and_a_reading_counts_what_was_let_in_meanwhile() -> None:
    clock, stop = _Clock(), asyncio.Event()
    gate = QueueGate(stop, clock)
    # Half of the sending: half of the mark (400) and of the drain (50/s).
    gate.update(Reading(size=600, limit=1_000, outbound=100), share=0.8, part=0.5, since=90)
    assert gate.rate() == 50
    await gate.admit(10)  # 300 + 90 + 10 = 400
    waiter = asyncio.create_task(gate.admit(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    stop.set()  # a stop lets the waiting send go, to be given back
    await asyncio.wait_for(waiter, timeout=2)


async def test_a_request_larger_than_the_mark_waits_for_an_empty_queue() -> None:
    clock, stop = _Clock(), asyncio.Event()
    gate = QueueGate(stop, clock)
    gate.update(Reading(size=10, limit=1_000, outbound=100), share=0.8, part=1.0)
    waiter = asyncio.create_task(gate.admit(1_000))  # a batch of 1,000 over a mark of 800
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.now = 0.1  # empty
    await asyncio.wait_for(waiter, timeout=2)


async def test_a_refusal_for_a_full_queue_holds_sends_until_it_drains_and_asks_for_a_reading() -> (
    None
):
    clock, stop = _Clock(), asyncio.Event()
    gate = QueueGate(stop, clock)
    gate.update(Reading(size=0, limit=1_000, outbound=100), share=0.8, part=1.0)
    assert not gate.read_full()
    gate.refused()  # another sender filled it: the model has it full, 1,000
    assert gate.wake.is_set() and gate.read_full()
    waiter = asyncio.create_task(gate.admit(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.now = 2.0  # 200 drained: 800, the mark, and one more must wait
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.now = 2.02
    await asyncio.wait_for(waiter, timeout=2)
    gate.accepted()
    assert not gate.read_full()


async def test_with_no_reading_a_refusal_closes_the_gate_for_longer_each_time_in_a_row() -> None:
    clock, stop = _Clock(), asyncio.Event()
    gate = QueueGate(stop, clock)
    gate.refused()
    gate.refused()  # under way before it closed: no longer for it
    waiter = asyncio.create_task(gate.admit(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.now = 1.0
    await asyncio.wait_for(waiter, timeout=2)
    gate.refused()  # refused again after it opened: closed for twice as long
    clock.now = 2.5
    waiter = asyncio.create_task(gate.admit(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    clock.now = 3.0
    await asyncio.wait_for(waiter, timeout=2)
