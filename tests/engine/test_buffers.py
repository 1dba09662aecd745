"""The TensorRT runner's buffer sizing (from the engine, not from metadata defaults) and
pinned-host views of FP16 I/O, on a CPU (defects 3 and 13 of issue 12)."""

import ctypes

import numpy as np
import pytest

from segedge.engine.buffers import host_view, plan_buffers
from segedge.errors import ModelFormatError


def test_a_21_class_256px_engine_gets_buffers_of_its_own_size():
    """The old runner sized the output for 3 classes at 128x128: this engine would overrun it."""
    plan = plan_buffers((8, 3, 256, 320), (8, 21, 256, 320), np.float32, np.float32, classes=21)
    assert plan.input_nbytes == 8 * 3 * 256 * 320 * 4
    assert plan.output_nbytes == 8 * 21 * 256 * 320 * 4
    assert plan.output_nbytes > 8 * 3 * 128 * 128 * 4 * 10


def test_unresolved_output_dimensions_come_from_the_input():
    plan = plan_buffers((4, 3, 192, 128), (-1, 3, -1, -1), np.float32, np.float32, classes=3)
    assert plan.output_shape == (4, 3, 192, 128)


def test_fp16_io_engine_gets_half_size_buffers():
    plan = plan_buffers((2, 3, 128, 128), (2, 3, 128, 128), np.float16, np.float16, classes=3)
    assert plan.input_nbytes == 2 * 3 * 128 * 128 * 2 and plan.output_dtype == np.float16


def test_class_count_mismatch_is_one_line():
    with pytest.raises(ModelFormatError, match="outputs 21 classes but its contract names 3") as info:
        plan_buffers((1, 3, 128, 128), (1, 21, 128, 128), np.float32, np.float32, classes=3, engine="m.engine")
    assert "\n" not in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize("profile, output", [((1, 3, 128), (1, 3, 128, 128)), ((1, 3, 128, 128), (1, 3, 128)), ((1, 3, 128, 128), (1, -1, 128, 128))])
def test_malformed_engine_shapes_are_refused(profile, output):
    with pytest.raises(ModelFormatError):
        plan_buffers(profile, output, np.float32, np.float32, classes=3)


def test_host_view_handles_float16_which_ctypes_cannot():
    with pytest.raises(NotImplementedError):  # what the old runner called for an FP16-I/O engine
        np.ctypeslib.as_ctypes_type(np.dtype(np.float16))
    memory = ctypes.create_string_buffer(64)
    view = host_view(ctypes.addressof(memory), 64, np.float16)
    assert view.shape == (32,) and view.dtype == np.float16
    view[:4] = np.array([1.5, -2.0, 0.25, 65504.0], np.float32)  # float32 input cast on assignment
    assert np.frombuffer(memory.raw[:8], np.float16).tolist() == [1.5, -2.0, 0.25, 65504.0]
    as_float32 = host_view(ctypes.addressof(memory), 64, np.float32)
    assert as_float32.shape == (16,)


def _run_graph_policy(shapes, use_graph=True, failing=()):
    """Replay the runner's bookkeeping over a sequence of input shapes; return the steps taken."""
    from segedge.engine.buffers import ENQUEUE_AND_CAPTURE, graph_step

    graph_shape, failed, steps = None, set(), []
    for shape in shapes:
        step = graph_step(use_graph, graph_shape, shape, failed)
        steps.append(step)
        if step == ENQUEUE_AND_CAPTURE:
            if shape in failing:
                failed.add(shape)
                graph_shape = None
            else:
                graph_shape = shape
        elif step != "replay":
            graph_shape = None
    return steps


def test_a_graph_is_never_replayed_after_a_shape_change():
    """Batch 1 -> 4 -> 1: the old runner replayed its batch-1 graph after the context ran batch 4."""
    b1, b4 = (1, 3, 128, 128), (4, 3, 128, 128)
    steps = _run_graph_policy([b1, b1, b4, b4, b1, b1])
    assert steps == ["enqueue+capture", "replay", "enqueue+capture", "replay", "enqueue+capture", "replay"]


def test_a_failed_capture_falls_back_to_plain_enqueue_for_that_shape_only():
    b1, b2 = (1, 3, 128, 128), (2, 3, 128, 128)
    steps = _run_graph_policy([b1, b1, b2, b1, b1], failing={b1})
    assert steps == ["enqueue+capture", "enqueue", "enqueue+capture", "enqueue", "enqueue"]
    assert _run_graph_policy([b1, b1], use_graph=False) == ["enqueue", "enqueue"]


def test_slot_pool_gives_each_concurrent_caller_its_own_slot():
    """`run X.engine --workers 4`: no two threads may hold one execution context at once."""
    import threading
    import time

    from segedge.engine.buffers import SlotPool

    made, freed = [], []
    pool = SlotPool(lambda number: made.append(object()) or made[-1], free=freed.append)
    holders: dict[int, int] = {}  # id(slot) -> thread count holding it now
    clash = []
    guard = threading.Lock()
    barrier = threading.Barrier(4)

    def work():
        barrier.wait()
        for _ in range(100):
            slot = pool.take()
            with guard:
                holders[id(slot)] = holders.get(id(slot), 0) + 1
                if holders[id(slot)] > 1:
                    clash.append(id(slot))
            time.sleep(0.0002)  # hold it a while, as an inference would
            with guard:
                holders[id(slot)] -= 1
            pool.give_back(slot)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not clash
    assert 1 <= len(made) <= 4 and len(pool.all) == len(made)  # reused, never more than the callers
    pool.close()
    assert set(map(id, freed)) == set(map(id, made)) and pool.all == []


def _hold_concurrently(pool, threads: int, rounds: int):
    """``threads`` callers take, hold and give back slots; returns (max holders at once, clashes
    on one slot, the set of slot numbers used)."""
    import threading
    import time

    guard = threading.Lock()
    holding: dict[int, int] = {}
    state = {"now": 0, "max": 0, "clash": 0}
    barrier = threading.Barrier(threads)

    def work():
        barrier.wait()
        for _ in range(rounds):
            slot = pool.take()
            with guard:
                holding[slot] = holding.get(slot, 0) + 1
                state["clash"] += holding[slot] > 1
                state["now"] += 1
                state["max"] = max(state["max"], state["now"])
            time.sleep(0.0005)
            with guard:
                holding[slot] -= 1
                state["now"] -= 1
            pool.give_back(slot)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(timeout=60)
    return state["max"], state["clash"], set(holding)


def test_concurrent_contexts_of_a_dynamic_engine_each_get_their_own_profile():
    """Issue 24, item 1: every worker's context ran on profile 0 of a dynamic-batch engine at once;
    TensorRT's IExecutionContext reference: "If the engine supports dynamic shapes, each execution
    context in concurrent use must use a separate optimization profile". A slot is numbered by the
    profile its context selects: with 2 profiles, 4 workers share 2 slots, never more at once."""
    from segedge.engine.buffers import SlotPool, concurrent_contexts
    from segedge.engine.profiles import Profile

    dynamic = Profile((1, 3, 128, 128), (1, 3, 128, 128), (8, 3, 128, 128))
    static = Profile((4, 3, 128, 128), (4, 3, 128, 128), (4, 3, 128, 128))
    assert concurrent_contexts([dynamic, dynamic]) == 2 and concurrent_contexts([dynamic]) == 1
    assert concurrent_contexts([static]) is None  # one static profile: contexts may share it

    made = []
    pool = SlotPool(lambda number: made.append(number) or number, capacity=concurrent_contexts([dynamic, dynamic]))
    most, clashes, used = _hold_concurrently(pool, threads=4, rounds=40)
    assert clashes == 0 and most <= 2 and sorted(made) == [0, 1] and used == {0, 1}
    unbounded = SlotPool(lambda number: number, capacity=concurrent_contexts([static]))
    most, clashes, _ = _hold_concurrently(unbounded, threads=4, rounds=40)
    assert clashes == 0 and most <= 4


def test_closing_the_pool_never_frees_a_slot_another_thread_holds():
    """Issue 24, item 12: ``close()`` freed every slot, also one a worker was inferring with."""
    from segedge.engine.buffers import SlotPool

    freed = []
    pool = SlotPool(lambda number: f"slot{number}", free=freed.append)
    held, idle = pool.take(), pool.take()
    pool.give_back(idle)
    pool.close()  # another thread still holds `held`
    assert freed == [idle]
    pool.give_back(held)  # its inference finished: freed now
    assert freed == [idle, held]
    with pytest.raises(RuntimeError, match="closed"):
        pool.take()
    pool.close()  # twice is harmless
    assert freed == [idle, held]
