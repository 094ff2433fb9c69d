"""The textbook free-list allocators: where each fit puts a block, coalescing, brk growth and trim."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fakekernel import FakeKernel
from vmexp.libc.base import MALLINFO_FIELDS
from vmexp.libc.malloc import InvalidPointer, MallocConfigError
from vmexp.libc.simple import BestFit, FirstFit, FreeListAllocator, best_fit, block_size, first_fit, make


def holes() -> tuple[FakeKernel, FreeListAllocator, FreeListAllocator]:
    """Two heaps with the same three holes: 1008, 496 and 304 bytes, in that address order."""
    out = []
    for cls in (FirstFit, BestFit):
        k = FakeKernel()
        a = cls(k)
        ps = [a.malloc(n) for n in (992, 16, 480, 16, 288, 16)]
        for p in ps[::2]:
            a.free(p)
        out.append(a)
    return k, out[0], out[1]


def test_fit_functions_on_a_free_list() -> None:
    addrs = [100, 200, 300]
    sizes = {100: 64, 200: 48, 300: 32}
    assert first_fit(addrs, sizes, 40) == 100
    assert best_fit(addrs, sizes, 40) == 200
    assert best_fit(addrs, sizes, 32) == 300
    assert first_fit(addrs, sizes, 65) == best_fit(addrs, sizes, 65) == -1


def test_block_sizes_have_a_16_byte_header_and_alignment() -> None:
    assert [block_size(n) for n in (0, 1, 16, 17, 100, 1000)] == [32, 32, 32, 48, 128, 1024]


def test_first_fit_takes_the_lowest_hole_best_fit_the_tightest() -> None:
    k, ff, bf = holes()
    base = k.brk_start
    # A 280-byte request needs 304 bytes: first fit splits the first hole, best fit fills the third exactly.
    assert ff.malloc(280) - 16 == base
    assert bf.malloc(280) - 16 == base + 1008 + 32 + 496 + 32
    assert [s for _a, s, st in ff.heap_walk() if st == "free"][:3] == [704, 496, 304]
    assert [s for _a, s, st in bf.heap_walk() if st == "free"][:2] == [1008, 496]


def test_free_coalesces_with_both_neighbours() -> None:
    k = FakeKernel()
    a = FirstFit(k)
    p, q, r, _pin = a.malloc(100), a.malloc(100), a.malloc(100), a.malloc(100)
    a.free(p)
    a.free(r)
    assert a.mallinfo2()["ordblks"] == 3  # two holes and the free end of the heap
    a.free(q)
    assert a.mallinfo2()["ordblks"] == 2
    assert a.heap_walk()[0] == (k.brk_start, 3 * 128, "free")
    a.check()


def test_heap_grows_in_pages_and_large_blocks_stay_on_the_heap() -> None:
    k = FakeKernel()
    a = FirstFit(k)
    a.malloc(100)
    assert k.syscalls() == [("brk", 0), ("brk", 4096)]
    a.malloc(10 * 1024 * 1024)  # no mmap path
    assert [n for n, _l in k.syscalls()] == ["brk", "brk", "brk"]
    assert a.mallinfo2()["arena"] == 4096 + 10 * 1024 * 1024  # the free end was reused
    assert a.mallinfo2()["hblks"] == 0


def test_free_end_above_the_trim_threshold_is_returned() -> None:
    k = FakeKernel()
    a = FirstFit(k, trim_threshold="64k")
    pin = a.malloc(100)
    p = a.malloc(200000)
    a.free(p)
    assert k.syscalls()[-1][0] == "brk" and k.syscalls()[-1][1] < 0
    info = a.mallinfo2()
    assert info["keepcost"] < 4096 + 32 and info["arena"] == info["uordblks"] + info["fordblks"]
    a.free(pin)
    a.check()


def test_malloc_trim_keeps_pad() -> None:
    k = FakeKernel()
    a = BestFit(k, trim_threshold=1 << 30)
    a.free(a.malloc(100000))
    assert a.malloc_trim(8192) == 1
    assert 8192 <= a.mallinfo2()["keepcost"] < 8192 + 4096 + 32
    assert a.malloc_trim(8192) == 0


def test_realloc_grows_in_place_into_a_free_neighbour_else_moves() -> None:
    k = FakeKernel()
    a = FirstFit(k)
    p = a.malloc(100)
    q = a.malloc(100)
    a.malloc(100)
    a.free(q)
    assert a.realloc(p, 200) == p  # 128 + 128 >= 224
    r = a.realloc(p, 1000)
    assert r != p and a.usable_size(r) >= 1000
    assert a.realloc(r, 10) == r and a.usable_size(r) == 16
    assert a.realloc(0, 10) != 0 and a.realloc(r, 0) == 0
    a.check()


def test_calloc_clears_the_block() -> None:
    k = FakeKernel()
    a = FirstFit(k)
    a.malloc(10)
    f = k.minflt
    a.calloc(10, 4096)
    assert k.minflt - f == 10  # the block's pages (the first is shared with the header's page)


def test_mallinfo2_has_all_fields_and_only_heap_totals() -> None:
    k = FakeKernel()
    a = BestFit(k)
    assert a.mallinfo2() == dict.fromkeys(MALLINFO_FIELDS, 0)
    a.malloc(100)
    info = a.mallinfo2()
    assert list(info) == list(MALLINFO_FIELDS)
    assert (info["arena"], info["uordblks"], info["fordblks"], info["ordblks"]) == (4096, 128, 3968, 1)
    assert info["smblks"] == info["hblks"] == info["usmblks"] == 0


def test_errors_name_the_pointer_and_the_setting() -> None:
    k = FakeKernel()
    a = FirstFit(k)
    p = a.malloc(10)
    a.free(p)
    with pytest.raises(InvalidPointer, match=r"free\(\): invalid pointer 0x"):
        a.free(p)
    with pytest.raises(MallocConfigError, match=r"allocator\.trim_threshold"):
        FirstFit(k, trim_threshold="lots")
    with pytest.raises(MallocConfigError, match="valid: first_fit, best_fit"):
        make("worst_fit", k)
    assert isinstance(make("best_fit", k, trim_threshold=None), FreeListAllocator)


def test_brk_failure_returns_null() -> None:
    k = FakeKernel(brk_limit=FakeKernel().brk_start + 8192)
    a = FirstFit(k)
    assert a.malloc(5000) != 0
    assert a.malloc(5000) == 0
    a.check()


@settings(max_examples=100, deadline=None)
@given(
    fit=st.sampled_from(["first_fit", "best_fit"]),
    ops=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 300000), st.integers(0, 1 << 20)), max_size=80),
)
def test_random_sequences_keep_the_free_list_consistent(fit: str, ops: list[tuple[int, int, int]]) -> None:
    k = FakeKernel()
    a = make(fit, k, trim_threshold=65536)
    live: list[int] = []
    for code, size, pick in ops:
        if code == 0 or not live:
            p = a.malloc(size)
        elif code == 1:
            p = a.realloc(live.pop(pick % len(live)), size)
        elif code == 2:
            p = a.calloc(1, size)
        else:
            a.free(live.pop(pick % len(live)))
            p = 0
        if p:
            assert p % 16 == 0 and a.usable_size(p) >= size
            live.append(p)
        a.check()
        info = a.mallinfo2()
        assert info["uordblks"] + info["fordblks"] == info["arena"]
