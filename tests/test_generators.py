"""Synthetic workload generators: seeding, validity, distributions, patterns, presets, errors.

Statistical checks use a fixed seed and large samples, so they are
deterministic; each tolerance is several standard errors of the statistic
it bounds (stated beside it), wide enough for any seed, narrow enough to
catch a wrong parameterisation (a mean off by the distribution's shift, a
median taken for a mean, Lomax taken for Pareto).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import islice, pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import settings as composed
from vmexp.sim import simulate
from vmexp.workload import WorkloadError, build, parse_workload
from vmexp.workload.generators import assign_entries, build_generated
from vmexp.workload.ops import CALLOC, COMPUTE, FREE, MALLOC, REALLOC, SLEEP, TOUCH, Op
from vmexp.workload.sizes import parse_sizes

PS = 4096
CONF_WORKLOAD = Path(__file__).resolve().parent.parent / "conf" / "workload"
PRESETS = sorted(p.stem for p in CONF_WORKLOAD.glob("*.yaml") if p.stem not in ("trace", "pageref"))


def gen(**kw: Any) -> dict[str, Any]:
    """A generator spec: one-page blocks, all kept, no access, unless the test says otherwise."""
    spec: dict[str, Any] = {
        "kind": "generator",
        "allocs": 100,
        "sizes": {"dist": "fixed", "size": PS},
        "lifetime": {"dist": "fixed", "steps": 1, "long_lived": 1.0},
        "init": 0.0,
    }
    spec.update(kw)
    return spec


def ops_of(spec: dict[str, Any], nprocs: int = 1, seed: int = 0, pid: int = 0) -> list[Op]:
    return list(build_generated(spec, nprocs, seed, PS)[pid].ops)


def check_valid(ops: list[Op]) -> dict[int, int]:
    """Replay the liveness rules the engine enforces; returns the blocks live at the end."""
    live: dict[int, int] = {}
    for k, op in enumerate(ops):
        code = op[0]
        if code == MALLOC:
            assert op[1] not in live and op[2] >= 1, (k, op)
            live[op[1]] = op[2]
        elif code == CALLOC:
            assert op[1] not in live and op[2] * op[3] >= 1, (k, op)
            live[op[1]] = op[2] * op[3]
        elif code == REALLOC:
            assert op[1] in live and op[2] >= 1, (k, op)
            live[op[1]] = op[2]
        elif code == FREE:
            assert op[1] in live, (k, op)
            del live[op[1]]
        elif code == TOUCH:
            assert op[1] in live, (k, op)
            assert op[2] >= 0 and op[3] >= 1 and op[2] + op[3] <= live[op[1]], (k, op, live[op[1]])
            assert op[4] in (0, 1)
        elif code in (COMPUTE, SLEEP):
            assert op[1] > 0, (k, op)
        else:
            raise AssertionError(f"unexpected op {op}")
    return live


def pages(op: Op) -> int:
    return (op[3] + PS - 1) // PS


# ---------------------------------------------------------------------------
# Seeding
# ---------------------------------------------------------------------------

RICH: dict[str, Any] = {
    "kind": "generator",
    "allocs": 3000,
    "sizes": {"dist": "lognormal", "median": "2k", "sigma": 1.5, "max": "1M"},
    "lifetime": {"dist": "exponential", "mean": 50, "long_lived": 0.05},
    "access": {"pattern": "zipf", "rate": 4, "write": 0.3, "run": 2},
    "init": 0.5,
    "compute": "3us",
    "think": {"every": 100, "time": "1ms", "dist": "exponential"},
    "calloc": 0.1,
    "realloc": 0.05,
    "arrival": {"mode": "random", "gap": "10ms"},
}


def test_same_seed_same_ops_and_each_iteration_replays() -> None:
    a = build_generated(RICH, 3, 7, PS)
    b = build_generated(RICH, 3, 7, PS)
    for pa, pb in zip(a, b, strict=True):
        first = list(pa.ops)
        assert first == list(pb.ops)
        assert first == list(pa.ops)  # a second pass over the same ProcSpec gives the same stream
        assert pa.start_ns == pb.start_ns


def test_different_seeds_and_processes_differ() -> None:
    assert ops_of(RICH, seed=1) != ops_of(RICH, seed=2)
    procs = build_generated(RICH, 2, 1, PS)
    assert list(procs[0].ops) != list(procs[1].ops)


def test_adding_processes_does_not_change_the_others() -> None:
    alone = build_generated(RICH, 1, 11, PS)
    four = build_generated(RICH, 4, 11, PS)
    five = build_generated(RICH, 5, 11, PS)
    assert list(alone[0].ops) == list(four[0].ops)
    for i in range(4):
        assert list(four[i].ops) == list(five[i].ops)
        assert four[i].start_ns == five[i].start_ns
        assert four[i].name == five[i].name


def test_changing_the_access_rate_keeps_the_allocations() -> None:
    """One stream per purpose: sizes and lifetimes do not depend on how many pages are referenced."""

    def allocs(rate: float) -> list[Op]:
        spec = {**RICH, "access": {**RICH["access"], "rate": rate}}
        return [op for op in ops_of(spec, seed=3) if op[0] in (MALLOC, CALLOC, REALLOC, FREE)]

    assert allocs(1) == allocs(9)


# ---------------------------------------------------------------------------
# Validity
# ---------------------------------------------------------------------------


def test_rich_workload_is_valid_and_uses_every_operation() -> None:
    ops = ops_of(RICH, seed=5)
    check_valid(ops)
    kinds = Counter(op[0] for op in ops)
    assert set(kinds) == {MALLOC, CALLOC, REALLOC, FREE, TOUCH, COMPUTE, SLEEP}
    assert kinds[MALLOC] + kinds[CALLOC] + kinds[REALLOC] == 3000
    # 5 % of 3000 steps realloc (binomial: sd 12); 10 % calloc (sd 16).
    assert abs(kinds[REALLOC] - 150) < 60
    assert abs(kinds[CALLOC] - 300) < 80
    assert kinds[SLEEP] == 29  # steps 100, 200, ..., 2900


_pattern = st.sampled_from(
    [
        {"pattern": "none"},
        {"pattern": "sequential", "rate": 5},
        {"pattern": "uniform", "rate": 3.5, "run": 3},
        {"pattern": "zipf", "rate": 2, "s": 1.3},
        {"pattern": "loop", "rate": 7, "set": "20k"},
        {"pattern": "phased", "rate": 4, "set": "30k", "phase": 50},
    ]
)
_sizes = st.sampled_from(
    [
        {"dist": "uniform", "min": 1, "max": "20k"},
        {"dist": "exponential", "mean": "3k"},
        {"dist": "pareto", "min": 100, "alpha": 1.2, "max": "300k"},
        {"dist": "fixed", "size": 1},
    ]
)
_life = st.sampled_from(
    [
        {"dist": "exponential", "mean": 3, "long_lived": 0.1},
        {"dist": "fixed", "steps": 2},
        {"dist": "batch", "size": 7, "delay": 3, "long_lived": 0.5},
    ]
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    access=_pattern,
    sizes=_sizes,
    life=_life,
    init=st.sampled_from([0.0, 0.3, 1.0]),
    calloc=st.sampled_from([0.0, 0.2]),
    realloc=st.sampled_from([0.0, 0.3]),
    growth=st.sampled_from([0.5, 2.0]),
    seed=st.integers(0, 2**32),
    ps=st.sampled_from([4096, 2 << 20]),
)
def test_every_emitted_operation_is_valid(
    access: dict[str, Any],
    sizes: dict[str, Any],
    life: dict[str, Any],
    init: float,
    calloc: float,
    realloc: float,
    growth: float,
    seed: int,
    ps: int,
) -> None:
    spec = {
        "kind": "generator",
        "allocs": 300,
        "sizes": sizes,
        "lifetime": life,
        "access": access,
        "init": init,
        "calloc": calloc,
        "realloc": realloc,
        "realloc_growth": growth,
        "free_at_exit": True,
        "compute": "1us",
    }
    if access["pattern"] != "none":
        spec["refs"] = 400
    ops = list(build_generated(spec, 1, seed, ps)[0].ops)
    assert check_valid(ops) == {}  # free_at_exit leaves nothing behind


def test_a_huge_realloc_growth_grows_blocks_to_the_largest_size() -> None:
    """realloc_growth=1e308 passes validation (a number > 0); old * growth is then infinite,
    and the generator crashed with OverflowError (a traceback) instead of capping at sizes' max."""
    spec = gen(allocs=50, realloc=0.5, realloc_growth=1e308, sizes={"dist": "uniform", "min": 1, "max": "8k"})
    ops = ops_of(spec)
    check_valid(ops)
    grown = [op[2] for op in ops if op[0] == REALLOC]
    assert grown and set(grown) == {8192}


def test_a_huge_access_rate_produces_its_references_piece_by_piece() -> None:
    """access.rate=1e9 built one list of a billion touches before the first ran: tens of GiB of
    host memory that neither duration nor job_memory could stop. The first operations of such a
    step must come without the rest being held in memory."""
    import tracemalloc

    spec = gen(
        allocs=10, access={"pattern": "uniform", "rate": 1_000_000}, sizes={"dist": "fixed", "size": PS}
    )
    it = iter(build_generated(spec, 1, 0, PS)[0].ops)
    tracemalloc.start()
    try:
        first = list(islice(it, 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [op[0] for op in first[:3]] == [MALLOC, TOUCH, TOUCH]
    assert peak < 20 << 20, f"{peak / 2**20:.0f} MiB held for the first 1000 operations"


# ---------------------------------------------------------------------------
# Size distributions (samplers drawn directly: 200,000 draws, fixed seed)
# ---------------------------------------------------------------------------

N = 200_000


def draw(spec: dict[str, Any]) -> np.ndarray[Any, Any]:
    sampler, _ = parse_sizes(spec, "workload.sizes")
    return sampler(np.random.default_rng(20240611), N)


def test_fixed_size() -> None:
    assert set(draw({"dist": "fixed", "size": "4k"}).tolist()) == {4096}


def test_uniform_sizes_cover_both_bounds() -> None:
    x = draw({"dist": "uniform", "min": 100, "max": 200})
    assert x.min() == 100 and x.max() == 200
    assert abs(x.mean() - 150.0) < 0.5  # sd of the mean: 29 / sqrt(2e5) = 0.065


def test_lognormal_median_and_mean() -> None:
    x = draw({"dist": "lognormal", "median": 1000, "sigma": 0.5})
    assert abs(np.median(x) / 1000 - 1) < 0.01  # se of the median ~0.3 %
    assert abs(x.mean() / (1000 * math.exp(0.5**2 / 2)) - 1) < 0.01  # E = median * e^(sigma^2/2) = 1133


def test_exponential_mean_and_median() -> None:
    x = draw({"dist": "exponential", "mean": 5000})
    assert abs(x.mean() / 5000 - 1) < 0.01  # se 0.22 %
    assert abs(np.median(x) / (5000 * math.log(2)) - 1) < 0.015  # median = mean * ln 2


def test_pareto_is_classic_pareto_not_lomax() -> None:
    x = draw({"dist": "pareto", "min": 1000, "alpha": 2.5})
    assert x.min() == 1000  # support starts at x_m
    assert abs(np.median(x) / (1000 * 2 ** (1 / 2.5)) - 1) < 0.01  # median = x_m 2^(1/alpha) = 1320
    assert abs(x.mean() / (2.5 * 1000 / 1.5) - 1) < 0.02  # mean = alpha x_m / (alpha - 1) = 1667


def test_clipping_bounds() -> None:
    x = draw({"dist": "exponential", "mean": "10k", "min": "1k", "max": "20k"})
    assert x.min() == 1024 and x.max() == 20480


def test_mixture_weights() -> None:
    x = draw(
        {
            "dist": "mixture",
            "components": [
                {"weight": 9, "dist": "fixed", "size": 64},
                {"weight": 1, "dist": "uniform", "min": "96k", "max": "160k"},
            ],
        }
    )
    big = x > 64
    assert set(x[~big].tolist()) == {64}
    assert abs(big.mean() - 0.1) < 0.004  # sd 0.00067
    assert x[big].min() >= 96 << 10 and x[big].max() <= 160 << 10


def test_empirical_follows_the_trace_histogram(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("malloc 1 100\nmalloc 2 100\ncalloc 3 10 10\nrealloc 1 200\nfree 2\ntouch 1\n")
    x = draw({"dist": "empirical", "path": str(trace)})
    assert set(x.tolist()) == {100, 200}
    assert abs((x == 100).mean() - 0.75) < 0.005  # 3 of the 4 requests are 100 bytes (sd 0.001)


def test_empirical_leaves_out_a_calloc_no_size_can_hold(tmp_path: Path) -> None:
    """calloc 1 2^62 4 is a legal trace line (glibc's calloc sees count x size overflow and returns
    NULL; validate replays it): the histogram stored it in an int64 and the run crashed with
    OverflowError. It is no size, as malloc(0) is none: left out, the others stay."""
    trace = tmp_path / "t.trace"
    trace.write_text(f"calloc 1 {1 << 62} 4\nmalloc 2 100\nmalloc 3 {(1 << 63) - 1}\n")
    x = draw({"dist": "empirical", "path": str(trace)})
    assert set(x.tolist()) == {100, (1 << 63) - 1}


def test_generator_emits_the_sampled_sizes() -> None:
    spec = gen(allocs=20000, sizes={"dist": "uniform", "min": 1, "max": 999})
    sizes = [op[2] for op in ops_of(spec) if op[0] == MALLOC]
    assert len(sizes) == 20000 and min(sizes) == 1 and max(sizes) == 999
    assert abs(sum(sizes) / len(sizes) - 500) < 6  # sd of the mean 2


def test_volume_ends_allocation() -> None:
    ops = ops_of(gen(allocs=None, volume="1M", sizes={"dist": "fixed", "size": 1000}))
    assert sum(1 for op in ops if op[0] == MALLOC) == 1049  # ceil(1 MiB / 1000)


# ---------------------------------------------------------------------------
# Lifetimes (measured in steps: one malloc per step here)
# ---------------------------------------------------------------------------


def lifetimes(ops: list[Op]) -> tuple[dict[int, int], dict[int, int]]:
    """(allocation step of each block, its lifetime in steps for those freed)."""
    born: dict[int, int] = {}
    life: dict[int, int] = {}
    for op in ops:
        if op[0] == MALLOC:
            born[op[1]] = len(born)
        elif op[0] == FREE:
            life[op[1]] = len(born) - born[op[1]]
    return born, life


def test_exponential_lifetime_mean() -> None:
    ops = ops_of(gen(allocs=40000, lifetime={"dist": "exponential", "mean": 50}))
    born, life = lifetimes(ops)
    early = [life[b] for b, t in born.items() if t < 20000]  # none censored: P(L > 20000) ~ 0
    assert len(early) == 20000 and min(early) >= 1
    assert abs(sum(early) / len(early) / 50 - 1) < 0.03  # se 0.7 %


def test_fixed_lifetime() -> None:
    _, life = lifetimes(ops_of(gen(allocs=1000, lifetime={"dist": "fixed", "steps": 7})))
    assert set(life.values()) == {7}
    assert len(life) == 1000 - 7 + 1  # blocks born at steps 994..999 die after the last step: never


def test_batch_lifetime_frees_each_batch_together() -> None:
    ops = ops_of(gen(allocs=50, lifetime={"dist": "batch", "size": 10, "delay": 5}))
    steps: dict[int, set[int]] = {}
    mallocs = 0
    for op in ops:
        if op[0] == MALLOC:
            mallocs += 1
        elif op[0] == FREE:
            steps.setdefault(mallocs, set()).add(op[1])
    # Batch k (ids 10k+1..10k+10) dies at step 10(k+1)+5; batches 4 and 5 would die after step 50.
    assert steps == {
        15: set(range(1, 11)),
        25: set(range(11, 21)),
        35: set(range(21, 31)),
        45: set(range(31, 41)),
    }


def test_last_batch_is_freed_when_allocation_ends_with_it() -> None:
    ops = ops_of(gen(allocs=30, lifetime={"dist": "batch", "size": 10, "delay": 0}))
    assert check_valid(ops) == {}


def test_long_lived_fraction() -> None:
    spec = gen(allocs=20000, lifetime={"dist": "fixed", "steps": 1, "long_lived": 0.2})
    live = check_valid(ops_of(spec))
    assert abs(len(live) / 20000 - 0.2) < 0.01  # sd 0.0028


def test_free_at_exit() -> None:
    spec = gen(
        allocs=500, lifetime={"dist": "exponential", "mean": 100, "long_lived": 0.3}, free_at_exit=True
    )
    assert check_valid(ops_of(spec)) == {}


# ---------------------------------------------------------------------------
# Access patterns (over long-lived one-page blocks unless stated)
# ---------------------------------------------------------------------------


def touches(spec: dict[str, Any], seed: int = 0) -> list[Op]:
    ops = ops_of(spec, seed=seed)
    check_valid(ops)
    return [op for op in ops if op[0] == TOUCH]


def top_share(counts: Counter[int], fraction: float) -> float:
    ranked = sorted(counts.values(), reverse=True)
    k = int(len(ranked) * fraction)
    return sum(ranked[:k]) / sum(ranked)


def test_zipf_top_tenth_gets_most_references() -> None:
    """Zipf(s=1) over 1000 blocks: the top 100 get H(100)/H(1000) = 5.19/7.49 = 69 % of references."""
    spec = gen(allocs=1000, access={"pattern": "zipf", "rate": 1, "s": 1.0}, refs=200_000)
    counts = Counter(op[1] for op in touches(spec))
    assert 0.64 < top_share(counts, 0.1) < 0.74
    uniform = gen(allocs=1000, access={"pattern": "uniform", "rate": 1}, refs=200_000)
    assert top_share(Counter(op[1] for op in touches(uniform)), 0.1) < 0.12  # 10 % and a little noise


def test_zipf_exponent_sharpens_the_hot_set() -> None:
    def share(s: float) -> float:
        spec = gen(allocs=1000, access={"pattern": "zipf", "rate": 1, "s": s}, refs=100_000)
        return top_share(Counter(op[1] for op in touches(spec)), 0.01)

    # Top 10 of 1000: s=0.8: ~ (11^0.2-1)/(1001^0.2-1) = 0.19; s=1.5: ~ 1 - 11^-0.5 = 0.70 (continuous law).
    assert abs(share(0.8) - 0.19) < 0.03
    assert abs(share(1.5) - 0.70) < 0.03


def test_sequential_scans_in_allocation_order_with_increasing_offsets() -> None:
    spec = gen(
        allocs=10, sizes={"dist": "fixed", "size": 3 * PS + 100}, access={"pattern": "sequential", "rate": 2}
    )
    spec["refs"] = 200
    ts = touches(spec)
    prev_id, prev_end = 0, 0
    passes = 0
    for op in ts:
        bid, off = op[1], op[2]
        if off:
            assert (bid, off) == (prev_id, prev_end)  # the rest of a block, where the last touch stopped
        else:
            assert prev_end in (0, 3 * PS + 100)  # the previous block was finished ...
            assert bid in (prev_id + 1, 1)  # ... and the next one in allocation order, or a new pass
            passes += bid == 1
        assert off % PS == 0
        prev_id, prev_end = bid, off + op[3]
    assert passes >= 5  # 20 pages while allocating, then 180 over passes of 40
    assert sum(pages(op) for op in ts) in (200, 201)


def test_sequential_pass_covers_every_page_once() -> None:
    spec = gen(
        allocs=8, sizes={"dist": "fixed", "size": 4 * PS}, access={"pattern": "sequential", "rate": 32}
    )
    spec["refs"] = 10_000
    ts = touches(spec)
    pages_seen = [(op[1], op[2] // PS + k) for op in ts for k in range(pages(op))]
    # In the tail (all 8 blocks live) the pattern repeats with period 32 pages, each page once.
    tail = pages_seen[-320:]
    for i in range(0, 320, 32):
        assert sorted(tail[i : i + 32]) == sorted(tail[:32])
        assert len(set(tail[i : i + 32])) == 32


def test_loop_stays_in_its_working_set() -> None:
    spec = gen(
        allocs=8,
        sizes={"dist": "fixed", "size": 4 * PS},
        access={"pattern": "loop", "rate": 5, "set": f"{12 * PS}"},
        refs=3000,
    )
    ts = touches(spec)
    assert {op[1] for op in ts} == {1, 2, 3}  # the oldest blocks up to 12 pages: blocks 1, 2, 3
    seq = [(op[1], op[2] // PS + k) for op in ts for k in range(pages(op))]
    assert len(set(seq)) == 12
    tail = seq[-1200:]
    assert all(tail[i] == tail[i + 12] for i in range(len(tail) - 12))  # a true cycle of 12 pages


def test_phased_hot_set_changes_between_phases() -> None:
    spec = gen(
        allocs=200,
        sizes={"dist": "fixed", "size": PS},
        access={"pattern": "phased", "rate": 10, "set": f"{10 * PS}", "phase": 500},
        refs=20_000 + 2000,
    )
    ts = touches(spec)
    assert len(ts) == 22_000  # one page per touch, so phases start every 500 touches
    sets = [{op[1] for op in ts[i : i + 500]} for i in range(0, 22_000, 500)]
    tail = sets[4:]  # the phases after allocation, when all 200 blocks are live
    assert all(len(s) == 10 for s in tail)  # each phase: a hot set of 10 one-page blocks, all used
    assert all(a != b for a, b in pairwise(tail))
    assert len(set().union(*tail)) > 100  # over 40 phases most of the 200 blocks are hot at some time


def test_write_fraction_rate_and_compute_per_reference() -> None:
    spec = gen(
        allocs=5000,
        access={"pattern": "uniform", "rate": 2.5, "write": 0.3, "compute": "100ns"},
        compute="1us",
    )
    ops = ops_of(spec)
    ts = [op for op in ops if op[0] == TOUCH]
    assert abs(sum(op[4] for op in ts) / len(ts) - 0.3) < 0.015  # sd 0.0041
    assert abs(len(ts) - 2.5 * 5000) <= 2  # the budget carries fractions from step to step
    cpu = sum(op[1] for op in ops if op[0] == COMPUTE)
    assert cpu == 5000 * 1000 + len(ts) * 100


def test_refs_keeps_the_process_referencing_after_allocation() -> None:
    spec = gen(
        allocs=4,
        sizes={"dist": "fixed", "size": "64k"},
        access={"pattern": "loop", "rate": 16, "set": "256k"},
    )
    spec["refs"] = 5000
    total = sum(pages(op) for op in touches(spec))
    assert 5000 <= total < 5000 + 16


def test_init_writes_the_new_block() -> None:
    ops = ops_of(gen(allocs=3, sizes={"dist": "fixed", "size": 10_000}, init=0.5))
    assert ops[:2] == [(MALLOC, 1, 10_000), (TOUCH, 1, 0, 5000, 1)]


# ---------------------------------------------------------------------------
# Arrivals and mixes
# ---------------------------------------------------------------------------


def test_arrivals() -> None:
    every = build_generated(gen(arrival={"mode": "every", "gap": "10ms", "first": "1ms"}), 3, 0, PS)
    assert [p.start_ns for p in every] == [1_000_000, 11_000_000, 21_000_000]
    assert {p.start_ns for p in build_generated(gen(), 3, 0, PS)} == {0}
    rnd = build_generated(gen(arrival={"mode": "random", "gap": "10ms"}), 2000, 0, PS)
    starts = [p.start_ns for p in rnd]
    assert starts == sorted(starts) and starts[0] > 0
    assert abs(starts[-1] / 2000 / 10e6 - 1) < 0.1  # mean gap 10 ms (sd of the mean 2.2 %)


def test_assignment_is_proportional_and_prefix_stable() -> None:
    assert assign_entries([2, 1, 1], [None] * 3, 4) == [0, 1, 2, 0]
    assert assign_entries([2, 1, 1], [None] * 3, 2) == [0, 1]
    long = assign_entries([3, 1], [None, None], 400)
    assert Counter(long) == {0: 300, 1: 100}
    for n in range(1, 40):
        assert long[:n] == assign_entries([3, 1], [None, None], n)
    assert assign_entries([1, 1, 1], [None, 2, None], 6) == [0, 1, 2, 1, 0, 2]


def test_mix_names_and_streams() -> None:
    entry = {k: v for k, v in RICH.items() if k not in ("kind", "arrival")}
    mix = {
        "kind": "mix",
        "processes": [
            {**entry, "name": "server", "share": 2},
            {**entry, "name": "batch", "share": 1},
        ],
    }
    procs = build_generated(mix, 3, 0, PS)
    assert [p.name for p in procs] == ["server.0", "batch", "server.1"]
    solo = build_generated(mix, 1, 0, PS)
    assert solo[0].name == "server" and list(solo[0].ops) == list(procs[0].ops)
    assert list(procs[0].ops) != list(procs[2].ops)  # same generator, own streams


# ---------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((CONF_WORKLOAD / f"{name}.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_the_presets_are_there() -> None:
    assert {
        "mixed",
        "working_set",
        "fragmentation",
        "threshold",
        "streaming",
        "cache",
        "batch",
        "random",
    } <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_and_produces_valid_ops(name: str) -> None:
    spec = load(name)
    assert next(iter(spec)) == "kind" and spec["kind"] in ("generator", "mix")
    procs = build(spec, 4, 0, PS)
    assert len(procs) == 4
    for p in procs:
        head = list(islice(p.ops, 20_000))
        assert len(head) > 100
        check_valid(head)


def test_mixed_preset_overruns_64m_and_straddles_the_threshold_range() -> None:
    procs = build(load("mixed"), 4, 0, PS)
    assert [p.name for p in procs] == ["server.0", "batch", "scan", "server.1"]
    peaks = []
    sizes: list[int] = []
    for p in procs:
        live: dict[int, int] = {}
        total = peak = 0
        for op in p.ops:
            code = op[0]
            if code in (MALLOC, REALLOC, CALLOC):
                n = op[2] * op[3] if code == CALLOC else op[2]
                total += n - live.get(op[1], 0)
                live[op[1]] = n
                sizes.append(n)
                peak = max(peak, total)
            elif code == FREE:
                total -= live.pop(op[1])
        peaks.append(peak)
    assert sum(peaks) > 96 << 20  # the default 64 MiB of RAM must swap
    bands = Counter(min(s.bit_length(), 20) for s in sizes if s >= 32 << 10)
    # Requests in each octave the threshold sweep moves: [32k,64k), [64k,128k), [128k,256k), [256k,512k).
    for bits in (16, 17, 18, 19):
        assert bands[bits] >= 300, bands


def test_working_set_preset_loops_over_its_working_set() -> None:
    spec = load("working_set")
    ops = list(build(spec, 1, 0, PS)[0].ops)
    ts = [op for op in ops if op[0] == TOUCH]
    ws_pages = {(op[1], op[2] // PS + k) for op in ts for k in range(pages(op))}
    assert len(ws_pages) * PS == 8 << 20
    assert sum(pages(op) for op in ts) >= spec["refs"]


# ---------------------------------------------------------------------------
# Errors: one line, naming the key
# ---------------------------------------------------------------------------

BAD: list[tuple[dict[str, Any], str]] = [
    ({"sizzes": {}}, r"^workload\.sizzes: not a parameter of workload kind generator \(valid: .*sizes"),
    (
        {"sizes": {"dist": "foo"}},
        r"^workload\.sizes\.dist: 'foo' is not one of fixed, uniform, lognormal, exponential",
    ),
    (
        {"sizes": {"dist": "lognormal", "median": "1k"}},
        r"^workload\.sizes\.sigma: must be a number > 0, got None",
    ),
    ({"sizes": {"dist": "fixed", "size": "12q"}}, r"^workload\.sizes\.size: expected a size such as"),
    (
        {"sizes": {"dist": "fixed", "size": 8, "mean": 3}},
        r"^workload\.sizes\.mean: not a parameter of sizes dist fixed \(valid: size\)",
    ),
    ({"sizes": {"dist": "uniform", "min": 10, "max": 5}}, r"^workload\.sizes\.max: 5 is below min"),
    (
        {"sizes": {"dist": "mixture", "components": [{"dist": "fixed", "size": 1}]}},
        r"^workload\.sizes\.components\[0\]\.weight",
    ),
    (
        {"sizes": {"dist": "empirical", "path": "/nonexistent/x.trace"}},
        r"^workload\.sizes\.path: /nonexistent/x\.trace: no such file",
    ),
    (
        {"lifetime": {"dist": "forever"}},
        r"^workload\.lifetime\.dist: 'forever' is not one of exponential, fixed, batch",
    ),
    (
        {"lifetime": {"dist": "fixed", "steps": 1, "long_lived": 1.5}},
        r"^workload\.lifetime\.long_lived: must be a fraction",
    ),
    (
        {"access": {"pattern": "zipf", "rate": 1, "set": "1M"}},
        r"^workload\.access\.set: not a parameter of access pattern zipf",
    ),
    (
        {"access": {"pattern": "random"}},
        r"^workload\.access\.pattern: 'random' is not one of none, sequential",
    ),
    ({"access": {"pattern": "loop", "rate": 1}}, r"^workload\.access\.set: a size is required"),
    ({"access": {"pattern": "uniform", "rate": 0}}, r"^workload\.access\.rate: must be a number > 0, got 0"),
    ({"refs": 10}, r"^workload\.refs: needs an access pattern"),
    ({"allocs": None}, r"^workload\.allocs: give allocs"),
    ({"allocs": 2.5}, r"^workload\.allocs: must be an integer >= 1, got 2\.5"),
    ({"compute": "5 parsecs"}, r"^workload\.compute: "),
    ({"think": {"every": 10}}, r"^workload\.think\.time: thinking every 10 steps needs a time above 0"),
    ({"arrival": {"mode": "every"}}, r"^workload\.arrival\.gap: arrival mode every needs a gap"),
    ({"calloc": 0.7, "realloc": 0.5}, r"^workload\.realloc: calloc \+ realloc fractions exceed 1"),
    ({"free_at_exit": "yes"}, r"^workload\.free_at_exit: expected true or false"),
]


@pytest.mark.parametrize(("change", "message"), BAD)
def test_bad_generator_key(change: dict[str, Any], message: str) -> None:
    spec = gen(**change)
    with pytest.raises(WorkloadError, match=message) as e:
        build(spec, 1, 0, PS)
    assert "\n" not in str(e.value)


def test_bad_mix_keys() -> None:
    entry = {k: v for k, v in gen().items() if k != "kind"}
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"kind": "mix", "processes": []}, 1, r"^workload\.processes: expected a non-empty list"),
        ({"kind": "mix", "procs": [entry]}, 1, r"^workload\.procs: not a parameter of workload kind mix"),
        (
            {"kind": "mix", "processes": [{**entry, "share": 1, "count": 2}]},
            1,
            r"^workload\.processes\[0\]\.count: give share or count",
        ),
        (
            {"kind": "mix", "processes": [{**entry, "shares": 1}]},
            1,
            r"^workload\.processes\[0\]\.shares: not a parameter of a mix entry",
        ),
        (
            {"kind": "mix", "processes": [{**entry, "kind": "generator"}]},
            1,
            r"^workload\.processes\[0\]\.kind: not a parameter",
        ),
        (
            {"kind": "mix", "processes": [{**entry, "name": "a"}, {**entry, "name": "a"}]},
            2,
            r"two entries are named 'a'",
        ),
        (
            {"kind": "mix", "processes": [{**entry, "count": 2}]},
            3,
            r"^nprocs: 3 processes, but the counts .* add up to 2",
        ),
        (
            {"kind": "mix", "processes": [entry, {**entry, "sizes": {"dist": "x"}}]},
            2,
            r"^workload\.processes\[1\]\.sizes\.dist: 'x'",
        ),
    ]
    for spec, nprocs, message in cases:
        with pytest.raises(WorkloadError, match=message):
            build(spec, nprocs, 0, PS)


# ---------------------------------------------------------------------------
# Through Hydra and the simulator (small sizes; the kernel's checker on)
# ---------------------------------------------------------------------------


def _shrink(spec: dict[str, Any]) -> None:
    """Cut a preset down to a fraction of a second of simulation, keeping its shape.

    The kernel's per-operation checker is off here (it costs milliseconds per
    operation at 64 MiB); the test below runs it on a small machine.
    """
    for g in spec.get("processes", [spec]):
        g["allocs"] = min(g["allocs"], 150)
        if g.get("refs"):
            g["refs"] = 3000


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_and_runs_in_the_simulator(name: str) -> None:
    s = composed(f"workload={name}", "nprocs=2")
    spec = load(name)
    assert s.workload == parse_workload(spec)  # Hydra hands the file's mapping over unchanged, parsed once
    _shrink(spec)
    result = simulate(s, build(spec, s.nprocs, s.seed, s.page_size))
    assert [(p.exit, p.error) for p in result.processes] == [("ok", "")] * 2
    assert all(p.refs > 0 and p.mallinfo["uordblks"] + p.mallinfo["hblkhd"] > 0 for p in result.processes)


def test_generated_ops_keep_the_kernel_consistent_under_swapping() -> None:
    """The kernel's invariant checker after every operation (costly: a small run on 1 MiB of RAM)."""
    s = composed("workload=random", "nprocs=2", "ram=1M", "workload.allocs=250", "workload.arrival.mode=zero")
    result = simulate(s, build(s.workload, s.nprocs, s.seed, s.page_size), check=True)
    assert [(p.exit, p.error) for p in result.processes] == [("ok", "")] * 2
    assert result.system["pswpout"] > 0
