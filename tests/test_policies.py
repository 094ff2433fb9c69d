"""Page-replacement policies against textbook answers, hand derivations and textbook oracles.

Each policy is driven by ``policy_harness``, a bare demand-paging loop that
sets accessed bits exactly as the kernel does (every reference, the faulting
one included), so the numbers here are the policies' own, free of any
kernel detail. The full-system versions of the textbook tests belong to the
kernel's tests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf
from policy_harness import FakeView, Pager, faults, run

from tests.conftest import settings as composed_settings
from vmexp.kernel.policies import REGISTRY, PolicyError, make_policy
from vmexp.kernel.policies.lru2q import inactive_ratio
from vmexp.kernel.policies.opt import next_uses

BELADY = [1, 2, 3, 4, 1, 2, 5, 1, 2, 3, 4, 5]
SILBERSCHATZ = [7, 0, 1, 2, 0, 3, 0, 4, 2, 3, 0, 3, 2, 1, 2, 0, 1, 7, 0, 1]
POLICIES = sorted(REGISTRY)
# The textbook policies answer victim() one frame at a time; linux reclaims in batches (test_linux.py).
VICTIM_POLICIES = [p for p in POLICIES if not REGISTRY[p].batch]
CONF = Path(__file__).resolve().parent.parent / "conf" / "policy"

# Hypothesis inputs: short strings over few pages, so that every run both
# fills memory and evicts; small enough that each example takes microseconds.
ref_strings = st.lists(st.integers(0, 9), min_size=0, max_size=60)
frame_counts = st.integers(1, 7)
FAST = settings(max_examples=150, deadline=None)


# --------------------------------------------------------------------- textbook answers


def test_belady_anomaly_fifo_faults_more_with_more_frames() -> None:
    assert faults("fifo", BELADY, 3) == 9
    assert faults("fifo", BELADY, 4) == 10


def test_belady_string_lru_and_opt() -> None:
    # LRU: 10 and 8, OPT: 7 and 6, worked by hand: stack algorithms have no anomaly.
    assert (faults("lru", BELADY, 3), faults("lru", BELADY, 4)) == (10, 8)
    assert (faults("opt", BELADY, 3), faults("opt", BELADY, 4)) == (7, 6)


@pytest.mark.parametrize(("policy", "expected"), [("fifo", 15), ("lru", 12), ("opt", 9)])
def test_silberschatz_string_three_frames(policy: str, expected: int) -> None:
    assert faults(policy, SILBERSCHATZ, 3) == expected


def test_clock_on_silberschatz_string_hand_derived() -> None:
    """Second chance on Silberschatz's string with 3 frames: 14 faults.

    Slots s0 s1 s2 after each reference; ``*`` = accessed bit set, ``^`` =
    the hand, F = fault. A faulting page enters with its bit set (the MMU
    sets it on the faulting access). With memory full, the hand clears set
    bits until it meets a clear one, which is replaced; the hand moves past it.

        7 F  [7*  -   -  ]
        0 F  [7*  0*  -  ]
        1 F  [7*^ 0*  1* ]
        2 F  [2*  0^  1  ]   clears 7 0 1, comes round to 7: 7 out
        0    [2*  0*^ 1  ]
        3 F  [2*^ 0   3* ]   clears 0, 1 is clear: 1 out
        0    [2*^ 0*  3* ]
        4 F  [4*  0^  3  ]   clears 2 0 3, 2 out
        2 F  [4*  2*  3^ ]   0 out
        3    [4*  2*  3*^]
        0 F  [4^  2   0* ]   clears 3 4 2, 3 out
        3 F  [3*  2^  0* ]   4 out
        2    [3*  2*^ 0* ]
        1 F  [3   1*  0^ ]   clears 2 0 3, 2 out
        2 F  [3^  1*  2* ]   0 out
        0 F  [0*  1*^ 2* ]   3 out
        1    [0*  1*^ 2* ]
        7 F  [0   7*  2^ ]   clears 1 2 0, 1 out
        0    [0*  7*  2^ ]
        1 F  [0*^ 7*  1* ]   2 out

    14 faults: between LRU's 12 and FIFO's 15, as the one reference bit
    approximates recency.
    """
    result = run("clock", SILBERSCHATZ, 3)
    assert result.faults == 14
    assert result.evicted == [7, 1, 2, 0, 3, 4, 2, 0, 3, 1, 2]


def test_clock_a_just_faulted_page_has_its_bit_set() -> None:
    """1,2,3,1,4,5 with 3 frames evicts 1 then 2.

    The hit on 1 adds nothing: its bit is already set by its fault. At the
    fault on 4 all three bits are set, so the hand goes all the way round,
    clearing them, and evicts 1 where it started, as FIFO would; the fault
    on 5 then finds 2 with a clear bit. (Were new pages to enter with the bit
    clear, the hit on 1 would have saved it and 2, 3 would go instead.)
    """
    assert run("clock", [1, 2, 3, 1, 4, 5], 3).evicted == [1, 2]


# --------------------------------------------------------------------------------- lru2q


def test_lru2q_a_page_used_on_a_second_trip_is_activated() -> None:
    """2 frames, 1,2,3,2,4,5,2,6: evicts 1,3,4,5 and never 2 (LRU would evict 2 at 5).

    3 F: inactive [1 2] (tail first), both accessed by their faults: 1 is
    accessed but not PG_referenced -> referenced, back to the head; the same
    for 2; 1 again: no longer accessed -> evicted. 2 hit. 4 F: 2 is accessed
    and referenced -> activated; 3 accessed -> referenced, rotated, then not
    accessed -> evicted. 5 F: active [2], inactive [4]; inactive*1 < active
    is false, so the active list is not aged; 4 goes as 3 did. 2 hit, and 6
    evicts 5 the same way.
    """
    result = run("lru2q", [1, 2, 3, 2, 4, 5, 2, 6], 2)
    assert result.evicted == [1, 3, 4, 5]
    assert result.faults == 6
    assert faults("lru", [1, 2, 3, 2, 4, 5, 2, 6], 2) == 7


def test_lru2q_activation_ages_the_active_list() -> None:
    """3 frames, 1,2,3,4,2,3,5: evicts 1, then 2, although 2 and 3 were both used again.

    4 F: the first trip marks 1, 2, 3 referenced, the second evicts 1:
    inactive [2 3 4], 2 and 3 referenced. 2, 3 hit. 5 F: 2 is accessed and
    referenced -> active [2]; 3 likewise -> active [2 3], inactive [4]; now
    inactive * 1 < active, so the active tail, 2, is deactivated (its
    accessed bit cleared on the way) to the inactive head: inactive [4 2].
    4 accessed -> referenced, rotated: [2 4]; 2 not accessed -> evicted.
    """
    pager = Pager("lru2q", 3)
    for vpn in [1, 2, 3, 4, 2, 3, 5]:
        pager.access(vpn)
    assert pager.result.evicted == [1, 2]
    inactive, active = pager.policy.lists()  # type: ignore[attr-defined]
    page = pager.view.page
    assert ([page[f] for f in inactive], [page[f] for f in active]) == ([4, 5], [3])


def test_lru2q_deactivation_consumes_the_accessed_bit() -> None:
    """3 frames, 1,2,3,4,1,3,5,1,3,2: evicts 1, 2, 4, 3; the hit on active page 3 does not save it.

    4 F: two trips over [1 2 3], 1 out, 2 and 3 referenced. 1 F: 2 is not
    accessed, out: inactive [3 4 1]. 3 hit. 5 F: 3 accessed and referenced ->
    active [3]; 4 and 1 accessed, referenced and rotated; 4 out: inactive
    [1 5]. 1 and 3 hit. 2 F: 1 -> active [3 1]; inactive [5] is now low, so 3
    is deactivated, and shrink_active_list's page_referenced clears the bit
    the hit set (an anonymous page is deactivated even when referenced):
    inactive [5 3]. 5 is rotated, and 3, found unaccessed, goes.
    """
    assert run("lru2q", [1, 2, 3, 4, 1, 3, 5, 1, 3, 2], 3).evicted == [1, 2, 4, 3]


@pytest.mark.parametrize(
    ("memory", "ratio"),
    # The table in the comment above inactive_is_low() in mm/vmscan.c.
    [("10M", 1), ("100M", 1), ("1G", 3), ("10G", 10), ("100G", 31), ("1T", 101), ("10T", 320)],
)
def test_lru2q_inactive_ratio_matches_the_kernel_table(memory: str, ratio: int) -> None:
    from vmexp.units import parse_size

    assert inactive_ratio(parse_size(memory) // 4096, 4096) == ratio
    assert inactive_ratio(parse_size(memory) // (2 << 20), 2 << 20) == ratio


# ----------------------------------------------------------------------------------- lfu


def test_lfu_evicts_the_least_used_then_the_oldest_arrival() -> None:
    # Counts at the fault on 4: 1:3, 2:2, 3:1 -> 3; at 5: 1:3, 2:2, 4:1 -> 4.
    assert run("lfu", [1, 1, 1, 2, 2, 3, 4, 5], 3).evicted == [3, 4]
    # All counts equal: the earliest arrival goes, as in FIFO.
    assert run("lfu", [1, 2, 3, 4, 5], 3).evicted == [1, 2]


def test_lfu_keeps_a_page_that_was_hot_once() -> None:
    """1 used 4 times, then 2,3 alternate in 2 frames: 1 is never evicted, every 2/3 faults.

    That is 1 + 6 = 7 faults where LRU, which lets 1 go, takes 3.
    """
    refs = [1, 1, 1, 1, 2, 3, 2, 3, 2, 3]
    assert faults("lfu", refs, 2) == 7
    assert 1 not in run("lfu", refs, 2).evicted
    assert faults("lru", refs, 2) == 3


# ------------------------------------------------------------------------------------ ws


def test_ws_evicts_a_page_that_left_its_window() -> None:
    """3 frames, tau = 2 references, 1,2,3,4,2,1,3,3,2: WS evicts 1, 3, 2, 1; clock 1, 3, 2, 4.

    Time t is the reference's index; ``last`` is the last-use time.

    - 4 F (t=3): all three bits are set (by the faults), so the turn refreshes
      1, 2, 3 to 3 and finds no page out of the window: the oldest goes,
      ties to the first refreshed: 1. Ring 2 3 4, hand on 2.
    - 2 hit (t=4).
    - 1 F (t=5): 2's bit is set: refreshed to 5. 3 is clear and 5 - 3 = 2 =
      tau old: out of the working set, evicted. Ring 2 1 4, hand on 4.
    - 3 F (t=6): 4's fault bit is set: 6; 2 is clear, 1 old: passed; 1's bit
      is set: 6. A fruitless turn: the oldest, 2 (last 5), goes.
    - 3 hit (t=7).
    - 2 F (t=8): the hand is on 1, clear since t=6 and 2 old: evicted.

    Clock differs at the end: its hand never cleared 1's fault bit, so it
    passes 1 and takes 4.
    """
    refs = [1, 2, 3, 4, 2, 1, 3, 3, 2]
    assert run("ws", refs, 3, params={"tau": "2ns"}).evicted == [1, 3, 2, 1]
    assert run("clock", refs, 3).evicted == [1, 3, 2, 4]


def test_ws_quiet_period_after_a_fruitless_turn() -> None:
    """3 frames, tau = 2, 1,2,3,1,4,1,3,2: evicts 1, 2, 3.

    4 F (t=4): a fruitless turn (every bit set) refreshes 1, 2, 3 to 4 and
    evicts 1; no page can be tau old before 4 + 2 = 6. 1 F (t=5) falls in
    that quiet period: no turn, the oldest page with a clear bit, 2, goes
    (a turn would have found the same victim, and cleared 4's fault bit on
    the way). 3 hit (t=6). 2 F (t=7): a turn again. The hand is on 3, set:
    7; 4 still carries its fault bit: 7; 1 likewise: 7. Fruitless: the
    oldest, refreshed first, is 3. (With a turn at t=5, 4 would have been
    found clear at t=7 and 2 old, and gone instead.)
    """
    assert run("ws", [1, 2, 3, 1, 4, 1, 3, 2], 3, params={"tau": "2ns"}).evicted == [1, 2, 3]


def test_ws_overcommitted_memory_costs_o1_bit_reads_per_fault() -> None:
    # A loop over 60 pages in 50 frames, all inside a 10 ms window: every
    # reference faults and no page ever leaves the window. A full turn per
    # fault would read 50 bits each time.
    pager = Pager("ws", 50, params={"tau": "10ms"})
    reads = 0
    clear = pager.view.test_and_clear_young

    def counting(frame: int) -> bool:
        nonlocal reads
        reads += 1
        return clear(frame)

    pager.view.test_and_clear_young = counting  # type: ignore[method-assign]
    for vpn in list(range(60)) * 40:
        pager.access(vpn)
    assert pager.result.faults == 2400
    assert reads <= 3 * pager.result.faults


def test_ws_a_page_unused_for_exactly_tau_is_out() -> None:
    """Denning's W(t, tau) holds the pages used in (t - tau, t]: one last used at t - tau is out.

    Frames X, A, B arrive at t=0; only A's accessed bit is set. A victim is
    asked at t=1: nothing is 3 old, the sweep refreshes A to 1 and the
    oldest, X, goes; the hand moves on to A. At t=4 the hand meets A, unused
    for exactly tau = 3, and takes it, before reaching B (unused for 4).
    """
    view = FakeView(1)
    policy = make_policy("ws", {"tau": "3ns"}, view, np.random.default_rng(0))
    x, a, b = 0, 1, 2
    for frame in (x, a, b):
        policy.inserted(frame)
    view.young = {x: False, a: True, b: False}
    view.clock = 1
    assert policy.victim() == x
    policy.removed(x)
    view.clock = 4
    assert policy.victim() == a


def test_ws_window_is_a_duration() -> None:
    view = FakeView(1)
    policy = make_policy("ws", {"tau": "10ms"}, view, np.random.default_rng(0))
    assert policy._tau == 10_000_000  # type: ignore[attr-defined]
    with pytest.raises(PolicyError, match=r"^policy\.params\.tau: must be greater than 0$"):
        make_policy("ws", {"tau": 0}, view, np.random.default_rng(0))


# -------------------------------------------------------------------------------- random


def test_random_is_uniform_over_resident_frames() -> None:
    # 8000 draws over 8 frames: each count is 1000 +- 3 sigma (sigma = 29.6).
    view = FakeView(1)
    policy = make_policy("random", {}, view, np.random.default_rng(1))
    for frame in range(8):
        policy.inserted(frame)
    counts = np.bincount([policy.victim() for _ in range(8000)], minlength=8)
    assert all(abs(c - 1000) < 90 for c in counts), counts


@FAST
@given(refs=ref_strings, frames=frame_counts, seed=st.integers(0, 2**32 - 1))
def test_random_is_deterministic_for_a_seed(refs: list[int], frames: int, seed: int) -> None:
    assert run("random", refs, frames, seed=seed) == run("random", refs, frames, seed=seed)


def test_random_depends_on_the_seed() -> None:
    refs = list(np.random.default_rng(7).integers(0, 50, 2000))
    assert run("random", refs, 10, seed=1).evicted != run("random", refs, 10, seed=2).evicted


# ----------------------------------------------------------------------------------- opt


def test_next_uses() -> None:
    assert list(next_uses([1, 2, 1, 3, 2, 1])) == [2, 4, 5, 6, 6, 6]
    assert list(next_uses([])) == []


def test_opt_without_a_future_is_a_clear_error() -> None:
    view = FakeView(1)
    policy = make_policy("opt", {}, view, np.random.default_rng(0))
    view.page[0] = 5
    with pytest.raises(PolicyError, match=r"^policy opt needs the future"):
        policy.inserted(0)


def test_opt_detects_a_kernel_that_skips_a_reference() -> None:
    view = FakeView(1)
    policy = make_policy("opt", {}, view, np.random.default_rng(0))
    policy.set_future([1, 2, 3])  # type: ignore[attr-defined]
    view.page[0] = 1
    policy.inserted(0)
    view.page[1] = 3  # reference #1 (page 2) was never reported
    with pytest.raises(PolicyError, match=r"reference #1 faulted in page 0x3 but the future has page 0x2"):
        policy.inserted(1)


def test_opt_prefers_a_page_never_used_again() -> None:
    # At the fault on 4 (3 frames): 1 is used again at once, 2 later, 3 never.
    assert run("opt", [1, 2, 3, 4, 1, 2, 1], 3).evicted == [3]


# -------------------------------------------------------------- oracles and properties


def fifo_oracle(refs: list[int], k: int) -> list[int]:
    """The textbook FIFO queue."""
    queue: list[int] = []
    evicted = []
    for p in refs:
        if p in queue:
            continue
        if len(queue) == k:
            evicted.append(queue.pop(0))
        queue.append(p)
    return evicted


def lru_oracle(refs: list[int], k: int) -> list[int]:
    """The textbook LRU stack: most recent at the end."""
    stack: list[int] = []
    evicted = []
    for p in refs:
        if p in stack:
            stack.remove(p)
        elif len(stack) == k:
            evicted.append(stack.pop(0))
        stack.append(p)
    return evicted


def opt_fault_oracle(refs: list[int], k: int) -> int:
    """Belady's rule by brute force: evict the resident page whose next use is farthest."""
    resident: set[int] = set()
    count = 0
    for i, p in enumerate(refs):
        if p in resident:
            continue
        count += 1
        if len(resident) == k:
            rest = refs[i + 1 :]
            resident.remove(max(resident, key=lambda q: rest.index(q) if q in rest else len(rest)))
        resident.add(p)
    return count


def lfu_oracle(refs: list[int], k: int) -> list[int]:
    """Evict the least count since arrival; ties to the earliest arrival."""
    count: dict[int, int] = {}
    arrival: dict[int, int] = {}
    evicted = []
    for i, p in enumerate(refs):
        if p in count:
            count[p] += 1
            continue
        if len(count) == k:
            out = min(count, key=lambda q: (count[q], arrival[q]))
            del count[out], arrival[out]
            evicted.append(out)
        count[p], arrival[p] = 1, i
    return evicted


def clock_oracle(refs: list[int], k: int) -> list[int]:
    """Second chance over a fixed array of k slots, the way textbooks draw it (-1 = empty)."""
    slots = [-1] * k
    bit = [False] * k
    hand = 0
    evicted = []
    for p in refs:
        if p in slots:
            bit[slots.index(p)] = True
            continue
        if -1 in slots:
            i = slots.index(-1)
        else:
            while bit[hand]:
                bit[hand] = False
                hand = (hand + 1) % k
            i = hand
            evicted.append(slots[i])
            hand = (hand + 1) % k
        slots[i] = p
        bit[i] = True
    return evicted


@FAST
@given(refs=ref_strings, frames=frame_counts)
def test_policies_match_their_textbook_definitions(refs: list[int], frames: int) -> None:
    assert run("fifo", refs, frames).evicted == fifo_oracle(refs, frames)
    assert run("lru", refs, frames).evicted == lru_oracle(refs, frames)
    assert run("lfu", refs, frames).evicted == lfu_oracle(refs, frames)
    assert run("clock", refs, frames).evicted == clock_oracle(refs, frames)
    assert faults("opt", refs, frames) == opt_fault_oracle(refs, frames)


@FAST
@given(refs=ref_strings, frames=frame_counts)
def test_lru_and_opt_never_fault_more_with_more_frames(refs: list[int], frames: int) -> None:
    for policy in ("lru", "opt"):
        assert faults(policy, refs, frames + 1) <= faults(policy, refs, frames)


@FAST
@given(refs=ref_strings, frames=frame_counts, seed=st.integers(0, 1000))
def test_opt_is_never_worse_than_any_policy(refs: list[int], frames: int, seed: int) -> None:
    best = faults("opt", refs, frames)
    for policy in VICTIM_POLICIES:
        assert best <= faults(policy, refs, frames, seed=seed), policy
    assert best <= faults("ws", refs, frames, params={"tau": "3ns"})


@st.composite
def operations(draw: st.DrawFn) -> list[tuple[str, int]]:
    kinds = st.sampled_from(["read", "read", "write", "unmap"])
    return draw(st.lists(st.tuples(kinds, st.integers(0, 12)), max_size=80))


@pytest.mark.parametrize("policy", VICTIM_POLICIES)
@FAST
@given(ops=operations(), frames=frame_counts)
def test_any_mix_of_references_and_unmaps_keeps_the_policy_consistent(
    policy: str, ops: list[tuple[str, int]], frames: int
) -> None:
    """The harness checks after each step that a victim is resident and len() is right.

    Unmapping removes frames the policy did not choose, in any position (the
    clock hand's frame, the LRU head, a page on the active list, ...).
    """
    future = [vpn for kind, vpn in ops if kind != "unmap"]
    pager = Pager(policy, frames, future=future if policy == "opt" else None)
    for kind, vpn in ops:
        if kind == "unmap":
            pager.unmap(vpn)
        else:
            pager.access(vpn, write=kind == "write")
    # Draining memory by victims alone empties the policy.
    while pager.table:
        frame = pager.policy.victim()
        assert frame in pager.view.page
        pager.unmap(pager.view.page[frame])
    assert len(pager.policy) == 0
    with pytest.raises(LookupError):
        pager.policy.victim()


@pytest.mark.parametrize("policy", [p for p in VICTIM_POLICIES if p != "random"])
def test_victim_is_stable_until_the_kernel_evicts(policy: str) -> None:
    # The kernel may ask again before it evicts (e.g. swap was full): same answer.
    refs = [1, 2, 3, 1, 4, 2, 5, 1]
    pager = Pager(policy, 4, future=refs if policy == "opt" else None)
    for vpn in refs:
        pager.access(vpn)
    assert pager.policy.victim() == pager.policy.victim()


# ------------------------------------------------------------------- registry and config


def test_unknown_policy_lists_the_valid_names() -> None:
    with pytest.raises(PolicyError) as err:
        make_policy("lru3", {}, FakeView(1), np.random.default_rng(0))
    assert (
        str(err.value) == "policy: 'lru3' is not one of clock, fifo, lfu, linux, lru, lru2q, opt, random, ws"
    )


def test_unknown_parameter_lists_the_valid_ones() -> None:
    with pytest.raises(
        PolicyError,
        match=r"^policy\.params\.ratio: not a parameter of policy lru2q \(valid: inactive_ratio, page_size\)$",
    ):
        make_policy("lru2q", {"ratio": 2}, FakeView(1), np.random.default_rng(0))
    with pytest.raises(
        PolicyError, match=r"^policy\.params\.tau: not a parameter of policy lru \(valid: none\)$"
    ):
        make_policy("lru", {"tau": 1}, FakeView(1), np.random.default_rng(0))


def test_bad_parameter_values_name_the_key() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(PolicyError, match=r"^policy\.params\.tau: expected a duration"):
        make_policy("ws", {"tau": "soon"}, FakeView(1), rng)
    with pytest.raises(
        PolicyError, match=r"^policy\.params\.inactive_ratio: must be an integer >= 0, got -1$"
    ):
        make_policy("lru2q", {"inactive_ratio": -1}, FakeView(1), rng)
    with pytest.raises(PolicyError, match=r"^policy\.params\.page_size: "):
        make_policy("lru2q", {"page_size": "big"}, FakeView(1), rng)


def test_every_registered_policy_has_a_config_file_and_back() -> None:
    assert sorted(p.stem for p in CONF.glob("*.yaml")) == POLICIES


@pytest.mark.parametrize("policy", POLICIES)
def test_config_file_builds_its_policy(policy: str) -> None:
    path = CONF / f"{policy}.yaml"
    root = OmegaConf.merge({"page_size": "4k"}, {"policy": OmegaConf.load(path)})
    conf: Any = OmegaConf.to_container(root.policy, resolve=True)
    assert conf["name"] == policy
    built = make_policy(conf["name"], conf.get("params"), FakeView(1), np.random.default_rng(0))
    assert type(built) is REGISTRY[policy]
    # Through the whole config: scope and allocation take their declared defaults.
    s = composed_settings(f"policy={policy}", "workload=pageref", "workload.refs=[1,2,3]")
    assert (s.policy.name, s.policy.scope, s.policy.allocation) == (policy, "global", "equal")
    # Every parameter the file sets is documented where users read it.
    text = path.read_text()
    for key in yaml.safe_load(text).get("params") or {}:
        assert re.search(rf"^\s+{key}:.*#\s*\S", text, re.M), f"{path.name}: params.{key} has no comment"
