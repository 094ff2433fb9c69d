"""A model of glibc 2.36 ptmalloc (main arena, x86_64), driven call for call.

The goal is that a trace replayed through this model makes the same
``brk``/``mmap``/``munmap``/``mremap`` calls, in the same order and with the
same lengths, as the real glibc 2.36 of Debian 12, ends with the same
``mallinfo2``, and faults in the same pages (rules R1-R28 of the project's
glibc notes, each named in the code where it applies).  Addresses matter
for that: which free chunk a request takes decides what is split, what
coalesces later and what borders the top chunk, so the bins keep glibc's
order (FIFO small and unsorted bins, size-sorted large bins with glibc's
"insert equal sizes second" rule, LIFO fastbins and tcache).

Representation.  Chunks are addresses (ints) in dicts, never objects:

* ``_inuse``: chunks handed to the program, chunk address -> size;
* ``_parked``: chunks in the tcache or a fastbin -> size (glibc keeps them
  marked in use, so they never coalesce until ``malloc_consolidate``);
* ``_free``: chunks in the unsorted, small and large bins -> size, and
  ``_free_end``: end address -> chunk address (glibc's boundary tag: the
  ``prev_size`` field that lets ``free`` find a free predecessor);
* the top chunk as ``_top``/``_topsize``; mmapped chunks in ``_mmapped``.

A small bin or the unsorted bin is a dict used as an ordered set: glibc
links new chunks at the head and takes from the tail, which is exactly
"oldest first" in dict order.  A large bin is a list in glibc's ``fd`` order
(largest first).  ``_binmap`` has bit ``i`` set iff bin ``i`` is non-empty;
glibc's binmap may keep stale bits, but a stale bit only makes its search
skip an empty bin, so the chunk chosen is the same.

Memory traffic.  Every store glibc makes into a chunk it handles (size
fields, boundary tags, free-list links of that chunk, tcache entries,
calloc's memset) is reported with one ``kernel.write`` per contiguous
region, so the kernel faults pages in as the real process does (R22);
realloc's memcpy reads and writes page by page in turn, as glibc's forward
copy does (``_copy``).  So are the loads and stores it makes in *other* chunks: the
next chunk's size and the in-use bit of the one after it (``free``), the
headers ``_int_malloc`` checks as it sorts the unsorted bin, the walk down
a large bin's size list, and the links of the chunks on either side of one
that enters or leaves a bin (the unsorted bin's links are kept beside it
for that).  Those pages were written before, so in a process without swap
they never fault (minor faults stay glibc's, R22); under swap they do: on a
heap of 24 000 blocks of 1-8 KiB, 1.65 times a 64 MiB cgroup, leaving them
out made 18.7 % fewer major faults than the real kernel (``python -m
vmexp.validate kernel``, the ``heap`` workloads).  An access is reported
once per page and operation where glibc makes several in a row; one kind
is left out because finding it would cost a walk of the bin: the link
stores into the neighbours of a chunk unlinked from a small bin.

Where the binary and malloc.c's text disagree, the binary wins: Debian's
``__libc_calloc`` has no ``sbrk_base + max_system_mem`` widening of the
old top (see ``calloc``).  Quirks of the 2.36 source that the binary does
have are kept: the swapped arguments of ``sysmalloc_mmap_fallback``, the
signed/unsigned comparison in ``systrim``, ``long`` wraparound for sizes
near ``PTRDIFF_MAX``.
"""

from __future__ import annotations

from vmexp.libc.base import MALLINFO_FIELDS, Kernel

__all__ = [
    "DEFAULT_MMAP_MAX",
    "DEFAULT_MMAP_THRESHOLD",
    "DEFAULT_MMAP_THRESHOLD_MAX",
    "DEFAULT_TOP_PAD",
    "DEFAULT_TRIM_THRESHOLD",
    "MALLOC_ALIGNMENT",
    "MINSIZE",
    "SIZE_SZ",
    "GlibcMalloc",
    "HeapCorrupt",
    "InvalidPointer",
    "MallocConfigError",
    "MallocError",
    "bin_index",
    "largebin_index",
    "request2size",
]

# R1: x86_64 constants.
SIZE_SZ = 8
MALLOC_ALIGNMENT = 16
CHUNK_HDR_SZ = 16
MINSIZE = 32
DEFAULT_MMAP_THRESHOLD = 131072
DEFAULT_TRIM_THRESHOLD = 131072
DEFAULT_TOP_PAD = 131072  # sysdeps/generic/malloc-machine.h wins over malloc.c's 0
DEFAULT_MMAP_MAX = 65536
DEFAULT_MMAP_THRESHOLD_MAX = 4 * 1024 * 1024 * 8
MMAP_AS_MORECORE_SIZE = 1024 * 1024
FASTBIN_CONSOLIDATION_THRESHOLD = 65536
MAX_FAST = 128  # global_max_fast after set_max_fast(DEFAULT_MXFAST)
NFASTBINS = 10
NBINS = 128
MIN_LARGE_SIZE = 1024
TCACHE_MAX_BINS = 64
TCACHE_FILL_COUNT = 7
TCACHE_MAX_CHUNK = 1040  # csize2tidx(1040) == 63
TCACHE_STRUCT_SIZE = 64 * 2 + 64 * 8  # counts[64] (uint16) + entries[64]; a 656-byte chunk (R3)
MAX_ITERS = 10000  # _int_malloc's bound on one pass over the unsorted bin
PTRDIFF_MAX = (1 << 63) - 1
MALLOC_CHUNK_STRUCT = 48  # sizeof(struct malloc_chunk), used by mtrim
_U64 = (1 << 64) - 1
_IS_MMAPPED = 2
_INT32_MAX = (1 << 31) - 1


class MallocError(ValueError):
    """A mistake of the program or the configuration, not of the model."""


class MallocConfigError(MallocError):
    """An allocator parameter that glibc's mallopt would not take as meant."""


class InvalidPointer(MallocError):
    """free/realloc/usable_size of a pointer that is not a live allocation.

    Real glibc aborts the process for most of these ("free(): invalid
    pointer", "double free detected in tcache 2"); the model stops the run
    with a message naming the pointer, so the trace line can be found.
    """


class HeapCorrupt(AssertionError):
    """``check()`` found the model's heap inconsistent: a bug in the model."""


def request2size(n: int) -> int:
    """Chunk size for a request of ``n`` bytes (R2): n + 8 rounded up to 16, at least 32."""
    nb = (n + SIZE_SZ + MALLOC_ALIGNMENT - 1) & ~(MALLOC_ALIGNMENT - 1)
    return nb if nb > MINSIZE else MINSIZE


def largebin_index(sz: int) -> int:
    """glibc's ``largebin_index_64``: 32 bins 64 apart, 16 of 512, 8 of 4096, ... ."""
    if (sz >> 6) <= 48:
        return 48 + (sz >> 6)
    if (sz >> 9) <= 20:
        return 91 + (sz >> 9)
    if (sz >> 12) <= 10:
        return 110 + (sz >> 12)
    if (sz >> 15) <= 4:
        return 119 + (sz >> 15)
    if (sz >> 18) <= 2:
        return 124 + (sz >> 18)
    return 126


# largebin_index of every size below 1 MiB, by size >> 6 (every bin boundary there is a multiple
# of 64): _int_malloc looks the bin up instead of calling the function, once per request and
# once per chunk it sorts.
_LARGEBIN_LIMIT = 1 << 20
_LARGEBIN = [largebin_index(s << 6) for s in range(_LARGEBIN_LIMIT >> 6)]


def bin_index(sz: int) -> int:
    """Bin of a free chunk of size ``sz``: small bins 2..63 hold one size each."""
    return sz >> 4 if sz < MIN_LARGE_SIZE else largebin_index(sz)


def _signed(x: int) -> int:
    """``x`` as a C ``long``: the low 64 bits, two's complement."""
    x &= _U64
    return x - (1 << 64) if x >> 63 else x


def _int_param(name: str, value: object, most: int) -> int:
    """A mallopt value: an int in [0, most].

    Sizes with units (``"64k"``) are the config layer's to parse; a value of
    another type reaching the allocator is a bug of its caller, not a setting.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"allocator.{name} must be an int, got {type(value).__name__} {value!r}")
    if not 0 <= value <= most:
        raise MallocConfigError(f"allocator.{name} must be in [0, {most}], got {value}")
    return value


class GlibcMalloc:
    """glibc 2.36 malloc over a simulated kernel (``vmexp.libc.base.Kernel``).

    ``mmap_threshold``, ``trim_threshold``, ``top_pad`` and ``mmap_max``
    default to glibc's values; setting any of them (even to its default)
    is ``mallopt``, which also turns the dynamic mmap threshold off (R10).
    They are ints (bytes), as ``mallopt`` takes them; see ``mallopt``.
    """

    def __init__(
        self,
        kernel: Kernel,
        *,
        mmap_threshold: int | None = None,
        trim_threshold: int | None = None,
        top_pad: int | None = None,
        mmap_max: int | None = None,
    ) -> None:
        ps: object = getattr(kernel, "page_size", None)
        if not isinstance(ps, int) or isinstance(ps, bool) or ps < 4096 or ps & (ps - 1):
            raise MallocConfigError(f"kernel.page_size must be a power of two >= 4096, got {ps!r}")
        self._k = kernel
        self._ps = ps
        # Bound methods: the hot paths call these millions of times.
        self._w = kernel.write
        self._r = kernel.read
        self._brk = kernel.brk
        self._madvise = getattr(kernel, "madvise_dontneed", None)

        # mp_ (R1)
        self._thr = DEFAULT_MMAP_THRESHOLD
        self._trim = DEFAULT_TRIM_THRESHOLD
        self._pad = DEFAULT_TOP_PAD
        self._mmaps_max = DEFAULT_MMAP_MAX
        self._no_dyn = False
        self._n_mmaps = 0
        self._mmapped_mem = 0
        self._sbrk_base = 0
        self._curbrk = -1  # glibc's __curbrk; -1 until the first brk(NULL)

        # main_arena
        self._system_mem = 0
        self._contiguous = True
        self._top = 0  # 0 stands for glibc's initial_top pseudo-chunk (size 0)
        self._topsize = 0
        self._last_remainder = 0
        self._have_fast = False
        self._inuse: dict[int, int] = {}
        self._parked: dict[int, int] = {}
        self._free: dict[int, int] = {}
        self._free_end: dict[int, int] = {}
        self._unsorted: dict[int, None] = {}
        # The unsorted bin's links, for the stores unlink_chunk makes into a chunk's neighbours:
        # chunk -> the chunk linked before it (older, its fd; absent for the oldest) and after it.
        self._older: dict[int, int] = {}
        self._newer: dict[int, int] = {}
        self._small: list[dict[int, None]] = [{} for _ in range(MIN_LARGE_SIZE >> 4)]
        self._large: list[list[int]] = [[] for _ in range(NBINS)]
        self._binmap = 0
        self._fast: list[list[int]] = [[] for _ in range(NFASTBINS)]
        self._tc: list[list[int]] = [[] for _ in range(TCACHE_MAX_BINS)]
        self._tcache = 0  # user address of tcache_perthread_struct; 0 = not yet allocated
        self._mmapped: dict[int, int] = {}
        # Fenceposts and unusable slivers left by a move of the top (sysmalloc).
        self._fence: dict[int, int] = {}
        # Address ranges the arena owns: [chunk_start, end); the top's range ends at the top's end.
        self._segs: list[list[int]] = []
        self._gap = 0  # arena bytes before a segment's first chunk (a misaligned break)

        chosen = (
            ("mmap_threshold", mmap_threshold),
            ("trim_threshold", trim_threshold),
            ("top_pad", top_pad),
            ("mmap_max", mmap_max),
        )
        for param, value in chosen:
            if value is not None:
                self.mallopt(param, value)

    # ------------------------------------------------------------------ parameters

    @property
    def mmap_threshold(self) -> int:
        """``mp_.mmap_threshold`` now (it moves with the dynamic threshold, R9)."""
        return self._thr

    @property
    def trim_threshold(self) -> int:
        return self._trim

    @property
    def top_pad(self) -> int:
        return self._pad

    @property
    def mmap_max(self) -> int:
        return self._mmaps_max

    @property
    def dynamic_threshold(self) -> bool:
        """False once any mallopt parameter was set (R10)."""
        return not self._no_dyn

    def mallopt(self, param: str, value: int) -> int:
        """``mallopt`` by name: ``mmap_threshold``, ``trim_threshold``, ``top_pad``, ``mmap_max``.

        As in glibc, every call first consolidates the fastbins (R11) and any
        of the four freezes the dynamic threshold (R10).  Returns 1 like glibc.
        ``value`` is an int (bytes, or mappings for ``mmap_max``): anything
        else raises ``TypeError``; an int out of range, ``MallocConfigError``.
        """
        if param == "mmap_max":
            count = _int_param(param, value, _INT32_MAX)
            self._consolidate()
            self._mmaps_max = count
        elif param in ("mmap_threshold", "trim_threshold", "top_pad"):
            size = _int_param(param, value, PTRDIFF_MAX)
            self._consolidate()
            if param == "mmap_threshold":
                self._thr = size  # no upper bound check in 2.36 (R11)
            elif param == "trim_threshold":
                self._trim = size
            else:
                self._pad = size
        else:
            raise MallocConfigError(
                f"unknown mallopt parameter {param!r}; "
                "valid: mmap_threshold, trim_threshold, top_pad, mmap_max"
            )
        self._no_dyn = True
        return 1

    # ------------------------------------------------------------------ public API

    def malloc(self, n: int) -> int:
        """``__libc_malloc``: tcache first (R5.1), then ``_int_malloc``."""
        if n < 0 or n > PTRDIFF_MAX:
            return 0
        nb = (n + 23) & ~15
        if nb < MINSIZE:
            nb = MINSIZE
        if not self._tcache:
            self._tcache_init()
        if nb <= TCACHE_MAX_CHUNK:
            tci = (nb - 17) >> 4
            tcb = self._tc[tci]
            if tcb:  # never true without a tcache
                return self._tcache_get(tcb, tci) + CHUNK_HDR_SZ
        c = self._int_malloc(nb)
        return c + CHUNK_HDR_SZ if c else 0

    def free(self, p: int) -> None:
        """``__libc_free``: munmap (raising the dynamic threshold, R9) or ``_int_free`` (R12)."""
        if p == 0:
            return
        c = p - CHUNK_HDR_SZ
        size = self._inuse.pop(c, 0)
        if size:
            if not self._tcache:
                self._tcache_init()
            self._int_free(c, size)
            return
        size = self._mmapped.get(c, 0)
        if not size:
            raise InvalidPointer(self._bad_pointer("free", p))
        nomask = size | _IS_MMAPPED
        if not self._no_dyn and nomask > self._thr and nomask <= DEFAULT_MMAP_THRESHOLD_MAX:
            self._thr = size
            self._trim = 2 * size
        self._munmap_chunk(c)

    def calloc(self, count: int, size: int) -> int:
        """``__libc_calloc`` (R27): ``_int_malloc`` without the tcache fast path, then clear.

        Memory glibc knows is fresh from the kernel is not cleared: an mmapped
        chunk, and the part of a chunk carved from the old top that lies
        beyond the old top's end.
        """
        if count < 0 or size < 0:
            return 0
        nbytes = count * size
        if nbytes > PTRDIFF_MAX:
            return 0
        if not self._tcache:
            self._tcache_init()
        # Only the current top counts as known-zero memory.  malloc.c also widens it to
        # sbrk_base + max_system_mem - top (the largest heap ever had), but Debian's 2.36
        # binary has no such code in __libc_calloc, and it measures that way: after a trim,
        # calloc from the regrown top clears only the old top's bytes.
        oldtop = self._top
        oldtopsize = self._topsize
        nb = (nbytes + 23) & ~15
        if nb < MINSIZE:
            nb = MINSIZE
        c = self._int_malloc(nb)
        if not c:
            return 0
        csz = self._inuse.get(c, 0)
        if not csz:  # mmapped: the kernel's zero pages need no clearing
            return c + CHUNK_HDR_SZ
        if c == oldtop and csz > oldtopsize:
            csz = oldtopsize
        self._w(c + CHUNK_HDR_SZ, csz - SIZE_SZ)
        return c + CHUNK_HDR_SZ

    def realloc(self, p: int, n: int) -> int:
        """``__libc_realloc``: mremap for mmapped chunks (R25), ``_int_realloc`` for heap chunks (R26)."""
        if n == 0 and p != 0:  # REALLOC_ZERO_BYTES_FREES
            self.free(p)
            return 0
        if p == 0:
            return self.malloc(n)
        c = p - CHUNK_HDR_SZ
        oldsize = self._inuse.get(c, 0)
        if not oldsize:
            oldsize = self._mmapped.get(c, 0)
            if not oldsize:
                raise InvalidPointer(self._bad_pointer("realloc", p))
            if n < 0 or n > PTRDIFF_MAX:
                return 0
            return self._realloc_mmapped(c, oldsize, n)
        if not self._tcache:
            self._tcache_init()
        if n < 0 or n > PTRDIFF_MAX:
            return 0
        nb = request2size(n)
        return self._int_realloc(c, oldsize, nb)

    def usable_size(self, p: int) -> int:
        """``malloc_usable_size`` (R2): nb − 8 on the heap, size − 16 when mmapped."""
        if p == 0:
            return 0
        c = p - CHUNK_HDR_SZ
        size = self._inuse.get(c) or self._parked.get(c)
        if size:
            return size - SIZE_SZ
        size = self._mmapped.get(c)
        if size:
            return size - CHUNK_HDR_SZ
        if c in self._free:
            return 0  # glibc: the chunk is not marked in use
        raise InvalidPointer(self._bad_pointer("malloc_usable_size", p))

    def malloc_trim(self, pad: int = 0) -> int:
        """glibc's ``mtrim``: consolidate, MADV_DONTNEED whole free pages in binned chunks, systrim.

        The madvise goes to ``kernel.madvise_dontneed(addr, length)`` when the
        kernel has it (the Kernel protocol does not require it); the return
        value counts it either way, as glibc does.
        """
        if pad < 0:
            raise MallocError(f"malloc_trim: pad must be >= 0, got {pad}")
        self._consolidate()
        ps = self._ps
        psm1 = ps - 1
        psindex = bin_index(ps)
        result = 0
        for i in [1, *range(psindex, NBINS)]:
            if i == 1:
                chunks: list[int] = list(self._unsorted)
            elif i < 64:
                chunks = list(self._small[i])
            else:
                chunks = self._large[i][::-1]  # glibc walks from last (smallest) to first
            for c in chunks:
                size = self._free[c]
                if size > psm1 + MALLOC_CHUNK_STRUCT:
                    paligned = (c + MALLOC_CHUNK_STRUCT + psm1) & ~psm1
                    size -= paligned - c
                    if size > psm1:
                        if self._madvise is not None:
                            self._madvise(paligned, size & ~psm1)
                        result = 1
        return result | self._systrim(pad)

    def mallinfo2(self) -> dict[str, int]:
        """``int_mallinfo`` of the main arena (R15); tcache chunks count as in use."""
        fastavail = 0
        nfast = 0
        for i, fb in enumerate(self._fast):
            nfast += len(fb)
            fastavail += len(fb) * ((i + 2) << 4)
        avail = self._topsize + fastavail + sum(self._free.values())
        values = {
            "arena": self._system_mem,
            "ordblks": 1 + len(self._free),
            "smblks": nfast,
            "hblks": self._n_mmaps,
            "hblkhd": self._mmapped_mem,
            "usmblks": 0,
            "fsmblks": fastavail,
            "uordblks": self._system_mem - avail,
            "fordblks": avail,
            "keepcost": self._topsize,
        }
        return {k: values[k] for k in MALLINFO_FIELDS}

    def heap_walk(self) -> list[tuple[int, int, str]]:
        """Every chunk of the arena and every mmapped chunk, by address."""
        tcached = {c for tcb in self._tc for c in tcb}
        out: list[tuple[int, int, str]] = []
        out.extend((c, s, "in_use") for c, s in self._inuse.items())
        out.extend((c, s, "tcache" if c in tcached else "fastbin") for c, s in self._parked.items())
        out.extend((c, s, "free") for c, s in self._free.items())
        out.extend((c, s, "in_use") for c, s in self._fence.items())
        out.extend((c, s, "mmapped") for c, s in self._mmapped.items())
        if self._topsize:
            out.append((self._top, self._topsize, "top"))
        out.sort()
        return out

    # ------------------------------------------------------------------ kernel side

    def _sbrk(self, inc: int) -> int:
        """glibc's ``__sbrk``: the first call queries the break with brk(NULL) (R3).

        Returns the old break, or -1 when the kernel did not move the break
        as far as asked (Linux's brk then returns the unchanged break).
        """
        if self._curbrk < 0:
            cur = self._brk(0)
            if cur < 0:
                return -1
            self._curbrk = cur
        if inc == 0:
            return self._curbrk
        old = self._curbrk
        want = old + inc
        if want < 0:
            return -1
        new = self._brk(want)
        if new < 0:
            return -1
        self._curbrk = new
        if new < want:
            return -1
        return old

    def _mmap_chunk(self, nb: int) -> int:
        """``sysmalloc_mmap`` (R8): one mapping rounded up to pages; the header is in its first page."""
        ps = self._ps
        size = (nb + SIZE_SZ + ps - 1) & ~(ps - 1)
        mm: int = self._k.mmap(size)
        if mm < 0:
            return 0
        self._w(mm, CHUNK_HDR_SZ)
        self._mmapped[mm] = size
        self._n_mmaps += 1
        self._mmapped_mem += size
        return mm

    def _munmap_chunk(self, c: int) -> None:
        """``munmap_chunk``: it reads the chunk's header (prev_size, size) before it unmaps the chunk.

        The read is the chunk's first page, which a program that freed a
        block it had not used for long finds swapped out: a major fault
        just before the munmap (measured on Linux 6.18).
        """
        self._r(c, CHUNK_HDR_SZ)
        size = self._mmapped.pop(c)
        self._n_mmaps -= 1
        self._mmapped_mem -= size
        self._k.munmap(c, size)

    def _sysmalloc(self, nb: int) -> int:
        """Get memory from the kernel for a request the arena cannot serve (R4, R6, R7, R28).

        A brk that fails falls back to an mmapped region (whole MiB while the
        arena is contiguous) that becomes the new top; the arena is then
        non-contiguous for good, and the old top is fenced off and freed.
        """
        if nb >= self._thr and self._n_mmaps < self._mmaps_max:
            c = self._mmap_chunk(nb)
            if c:
                return c
        ps = self._ps
        w = self._w
        old_top = self._top
        old_size = self._topsize
        old_end = old_top + old_size
        snd_brk = -1
        # glibc computes in a signed long: a request near PTRDIFF_MAX wraps negative and skips brk.
        size = _signed(nb + self._pad + MINSIZE - (old_size if self._contiguous else 0))
        size = _signed((size + ps - 1) & ~(ps - 1))
        brk = self._sbrk(size) if size > 0 else -1
        if brk < 0:
            # sysmalloc_mmap_fallback.  2.36 passes (pagesize, MMAP_AS_MORECORE_SIZE) to parameters
            # declared (minsize, pagesize): the region is rounded up to whole MiB when contiguous,
            # and is at least one page, not at least 1 MiB.  Measured with huge requests.
            fsize = size
            if self._contiguous:
                fsize = _signed((fsize + old_size + MMAP_AS_MORECORE_SIZE - 1) & ~(MMAP_AS_MORECORE_SIZE - 1))
            fsize &= _U64
            if fsize < ps:
                fsize = ps
            if fsize > nb:
                mbrk: int = self._k.mmap(fsize)
                if mbrk >= 0:
                    self._contiguous = False
                    brk = mbrk
                    snd_brk = mbrk + fsize
                    size = fsize
        if brk >= 0:
            if self._sbrk_base == 0:
                self._sbrk_base = brk
            self._system_mem += size
            if brk == old_end and snd_brk < 0:
                # The new space continues the top (R4): the common case.
                self._topsize = old_size + size
                self._seg_end(old_top, old_end + size)
                w(old_top + SIZE_SZ, SIZE_SZ)
            elif self._contiguous and old_size and brk < old_end:
                raise HeapCorrupt("break adjusted to free malloc space")
            else:
                correction = 0
                aligned_brk = brk
                if self._contiguous:
                    if old_size:
                        self._system_mem += brk - old_end  # a foreign sbrk's bytes count as ours
                    front = (brk + CHUNK_HDR_SZ) & (MALLOC_ALIGNMENT - 1)
                    if front:
                        correction = MALLOC_ALIGNMENT - front
                        aligned_brk += correction
                    correction += old_size
                    end_mis = brk + size + correction
                    correction += ((end_mis + ps - 1) & ~(ps - 1)) - end_mis
                    snd_brk = self._sbrk(correction)  # sbrk(0) when aligned: not a syscall
                    if snd_brk < 0:
                        correction = 0
                        snd_brk = self._sbrk(0)
                elif snd_brk < 0:
                    snd_brk = self._sbrk(0)
                if snd_brk >= 0:
                    self._top = aligned_brk
                    self._topsize = snd_brk - aligned_brk + correction
                    self._system_mem += correction
                    self._gap += aligned_brk - brk
                    self._segs.append([aligned_brk, aligned_brk + self._topsize])
                    w(aligned_brk + SIZE_SZ, SIZE_SZ)
                    if old_size:
                        self._fence_old_top(old_top, old_size)
        if self._topsize >= nb + MINSIZE:
            return self._carve_top(nb)
        return 0

    def _carve_top(self, nb: int) -> int:
        """Hand out the bottom ``nb`` bytes of the top chunk (R20); the caller saw that
        the top keeps at least MINSIZE, so the top is never used up."""
        top = self._top
        self._top = top + nb
        self._topsize -= nb
        w = self._w
        w(top + SIZE_SZ, SIZE_SZ)
        w(top + nb + SIZE_SZ, SIZE_SZ)
        self._inuse[top] = nb
        return top

    def _fence_old_top(self, old_top: int, old_size: int) -> None:
        """Two 16-byte in-use fenceposts end the old top so nothing coalesces across the gap."""
        size = (old_size - 2 * CHUNK_HDR_SZ) & ~(MALLOC_ALIGNMENT - 1)
        self._fence[old_top + size] = CHUNK_HDR_SZ
        self._fence[old_top + size + CHUNK_HDR_SZ] = CHUNK_HDR_SZ
        self._w(old_top + SIZE_SZ, SIZE_SZ)
        self._w(old_top + size + SIZE_SZ, 24)
        if size >= MINSIZE:
            self._int_free(old_top, size)
        elif size:
            self._fence[old_top] = size

    def _seg_end(self, start_chunk: int, new_end: int) -> None:
        """Move the end of the segment that holds ``start_chunk`` (the top)."""
        for seg in self._segs:
            if seg[0] <= start_chunk < seg[1]:
                seg[1] = new_end
                return

    def _systrim(self, pad: int) -> int:
        """Give the top's whole pages beyond ``pad`` back with one brk (R13).

        The first comparison is glibc's signed/unsigned one: a top smaller
        than 33 bytes makes ``top_area`` negative, which as a size_t is huge.
        """
        top_size = self._topsize
        top_area = top_size - MINSIZE - 1
        if 0 <= top_area <= pad:
            return 0
        extra = ((top_area - pad) & _U64) & ~(self._ps - 1)
        if extra >= 1 << 63:
            extra -= 1 << 64
        if extra == 0:
            return 0
        current = self._sbrk(0)
        if current != self._top + top_size:
            return 0
        self._sbrk(-extra)
        new = self._sbrk(0)
        if new < 0:
            return 0
        released = current - new
        if not released:
            return 0
        self._system_mem -= released
        self._topsize = top_size - released
        self._seg_end(self._top, self._top + self._topsize)
        self._w(self._top + SIZE_SZ, SIZE_SZ)
        return 1

    # ------------------------------------------------------------------ tcache

    def _tcache_init(self) -> None:
        """The first malloc allocates the 640-byte tcache structure before the request (R3)."""
        c = self._int_malloc(request2size(TCACHE_STRUCT_SIZE))
        if c:
            self._tcache = c + CHUNK_HDR_SZ
            self._w(self._tcache, TCACHE_STRUCT_SIZE)

    def _tcache_put(self, c: int, tcb: list[int], tci: int, size: int) -> None:
        """``tcache_put`` (R12a): LIFO, the chunk stays marked in use; the caller checked for room."""
        tcb.append(c)
        self._parked[c] = size
        w = self._w
        w(c + CHUNK_HDR_SZ, 16)  # entry->next, entry->key
        # counts[tci] .. entries[tci]: one region inside the tcache structure
        w(self._tcache + 2 * tci, 136 + 6 * tci)

    def _tcache_get(self, tcb: list[int], tci: int) -> int:
        """``tcache_get`` (R5.1): the most recently put chunk of a non-empty tcache bin."""
        c = tcb.pop()
        self._inuse[c] = self._parked.pop(c)
        w = self._w
        w(c + 24, SIZE_SZ)  # e->key = 0 (next is loaded from the same bytes' page)
        w(self._tcache + 2 * tci, 136 + 6 * tci)
        return c

    # ------------------------------------------------------------------ bins

    def _unlink(self, c: int) -> int:
        """``unlink_chunk``: take a chunk out of whichever regular bin holds it; returns its size.

        glibc loads the chunk's size and links and the next chunk's
        ``prev_size`` (a check), pages every caller has just used; then it
        relinks the chunks on either side: in a large bin the list has them
        (``_unlink_large``), in the unsorted bin its links. A small bin, a
        dict in age order, would need a walk to find them, so those two
        stores are not reported (its chunks are below 1 KiB: neighbours
        there were freed or binned recently).
        """
        size = self._free.pop(c)
        del self._free_end[c + size]
        if c in self._unsorted:
            older, newer = self._out_of_unsorted(c)
            if older:
                self._w(older + 3 * SIZE_SZ, SIZE_SZ)  # fd->bk = bk
            if newer:
                self._w(newer + CHUNK_HDR_SZ, SIZE_SZ)  # bk->fd = fd
        elif size < MIN_LARGE_SIZE:
            b = self._small[size >> 4]
            del b[c]
            if not b:
                self._binmap &= ~(1 << (size >> 4))
        else:
            i = largebin_index(size)
            lb = self._large[i]
            self._unlink_large(lb, lb.index(c), size)
            if not lb:
                self._binmap &= ~(1 << i)
        return size

    def _chunk_size(self, c: int) -> int:
        """The size of the arena's chunk at ``c``, which is not the top: in use, parked, binned or a fencepost."""
        return self._inuse.get(c) or self._free.get(c) or self._parked.get(c) or self._fence[c]

    def _group_head(self, lb: list[int], j: int) -> int:
        """The first chunk (in ``fd`` order) of the size of ``lb[j]``: the one that holds the size links."""
        free = self._free
        size = free[lb[j]]
        while j and free[lb[j - 1]] == size:
            j -= 1
        return lb[j]

    def _unlink_large(self, lb: list[int], k: int, size: int) -> None:
        """Remove ``lb[k]`` (of ``size``, already out of ``_free``) with the stores ``unlink_chunk`` makes around it.

        Its neighbours' ``bk`` and ``fd``; and when it heads its size (its
        ``fd_nextsize`` is set), the size list is rerouted: through the next
        chunk of that size if there is one, else between the sizes on either
        side (the list is circular: the smallest size links to the largest).
        """
        w = self._w
        free = self._free
        del lb[k]
        fd = lb[k] if k < len(lb) else 0
        bk = lb[k - 1] if k else 0
        if fd:
            w(fd + 3 * SIZE_SZ, SIZE_SZ)  # fd->bk = bk
        if bk:
            w(bk + CHUNK_HDR_SZ, SIZE_SZ)  # bk->fd = fd
        if bk and free[bk] == size:
            return  # not the head of its size: the size links are not in it
        same = fd and free[fd] == size
        if not lb or (same and free[lb[0]] == free[lb[-1]]):
            if same:  # the only size left: the next chunk links to itself
                w(fd + 4 * SIZE_SZ, 2 * SIZE_SZ)
            return
        j = k
        while j < len(lb) and free[lb[j]] == size:
            j += 1
        fdn = lb[j] if j < len(lb) else lb[0]  # the next smaller size's head (circular)
        bkn = self._group_head(lb, k - 1) if k else self._group_head(lb, len(lb) - 1)
        if same:
            w(fd + 4 * SIZE_SZ, 2 * SIZE_SZ)  # the next chunk of the size takes the links
        w(fdn + 5 * SIZE_SZ, SIZE_SZ)  # fd_nextsize->bk_nextsize
        w(bkn + 4 * SIZE_SZ, SIZE_SZ)  # bk_nextsize->fd_nextsize

    def _take_small(self, b: dict[int, None], nb: int) -> int:
        """``last (bin)`` of the small bin ``b`` (its oldest chunk, of size ``nb``), taken as ``_int_malloc`` takes it.

        Its ``bk`` is loaded, the chunk that names gets the bin as its ``fd``
        ("bck->fd = bin"), and the next chunk's PREV_INUSE is set.
        """
        it = iter(b)
        c = next(it)
        bck = next(it, 0)
        self._r(c + 3 * SIZE_SZ, SIZE_SZ)
        if bck:
            self._w(bck + CHUNK_HDR_SZ, SIZE_SZ)
        del b[c]
        del self._free[c]
        del self._free_end[c + nb]
        self._w(c + nb + SIZE_SZ, SIZE_SZ)
        return c

    def _to_large(self, lb: list[int], victim: int, size: int) -> None:
        """Sort a chunk from the unsorted bin into the large bin ``lb`` (largest first), as glibc does.

        The loads and stores that makes: the smallest chunk's size (is the
        new one smaller still?); if not, a walk down the size list from the
        largest (each size's first chunk: its size and ``fd_nextsize``) to
        the first size not above it, which the chunk joins second or precedes
        as a new size (the size links of the sizes on either side rerouted);
        then the links of the chunks on either side.
        """
        free = self._free
        w = self._w
        r = self._r
        if not lb:
            lb.append(victim)
            w(victim + CHUNK_HDR_SZ, 32)
            return
        last = lb[-1]
        r(last + SIZE_SZ, SIZE_SZ)
        if size < free[last]:  # the new smallest size, linked between the smallest and the largest
            w(lb[0] + 5 * SIZE_SZ, SIZE_SZ)
            w(self._group_head(lb, len(lb) - 1) + 4 * SIZE_SZ, SIZE_SZ)
            w(last + CHUNK_HDR_SZ, SIZE_SZ)
            lb.append(victim)
            w(victim + CHUNK_HDR_SZ, 32)
            return
        j = 0
        r(lb[0] + SIZE_SZ, SIZE_SZ)
        while size < free[lb[j]]:
            above = free[lb[j]]
            r(lb[j] + 4 * SIZE_SZ, SIZE_SZ)  # fd_nextsize: the next smaller size's first chunk
            while free[lb[j]] == above:
                j += 1
            r(lb[j] + SIZE_SZ, SIZE_SZ)
        if size == free[lb[j]]:
            r(lb[j] + CHUNK_HDR_SZ, SIZE_SZ)  # second of its size: the size list stays untouched
            pos = j + 1
            lb.insert(pos, victim)
            w(victim + CHUNK_HDR_SZ, 16)
        else:
            before = self._group_head(lb, j - 1 if j else len(lb) - 1)
            w(lb[j] + 5 * SIZE_SZ, SIZE_SZ)  # fwd->bk_nextsize = victim
            w(before + 4 * SIZE_SZ, SIZE_SZ)  # and the larger size's fd_nextsize
            pos = j
            lb.insert(pos, victim)
            w(victim + CHUNK_HDR_SZ, 32)
        if pos + 1 < len(lb):
            w(lb[pos + 1] + 3 * SIZE_SZ, SIZE_SZ)  # fwd->bk = victim
        if pos:
            w(lb[pos - 1] + CHUNK_HDR_SZ, SIZE_SZ)  # bck->fd = victim

    def _out_of_unsorted(self, c: int) -> tuple[int, int]:
        """Take ``c`` out of the unsorted bin; the chunks linked before and after it (0: the bin)."""
        del self._unsorted[c]
        older = self._older.pop(c, 0)
        newer = self._newer.pop(c, 0)
        if older:
            if newer:
                self._newer[older] = newer
            else:
                del self._newer[older]
        if newer:
            if older:
                self._older[newer] = older
            else:
                del self._older[newer]
        return older, newer

    def _to_unsorted(self, c: int, size: int) -> None:
        """Link a free chunk at the head of the unsorted bin, with its header and boundary tag.

        The bin's first chunk, if any, gets its ``bk`` (``fwd->bk = p``, read
        first by a check in ``free``).
        """
        unsorted = self._unsorted
        if unsorted:
            head = next(reversed(unsorted))
            self._w(head + 3 * SIZE_SZ, SIZE_SZ)
            self._older[c] = head
            self._newer[head] = c
        unsorted[c] = None
        self._free[c] = size
        self._free_end[c + size] = c
        # size field + fd/bk (+ fd_nextsize/bk_nextsize cleared for large sizes)
        self._w(c + SIZE_SZ, 24 if size < MIN_LARGE_SIZE else 40)

    def _consolidate(self) -> None:
        """``malloc_consolidate`` (R18): merge every fastbin chunk with free neighbours; never trims."""
        self._have_fast = False
        parked = self._parked
        coalesce = self._coalesce
        for fb in self._fast:
            if not fb:
                continue
            chunks = fb[::-1]  # from the bin's head, as glibc walks it
            fb.clear()
            for c in chunks:
                self._r(c + SIZE_SZ, 16)  # chunksize (p) and its fd, the next one to take
                coalesce(c, parked.pop(c))

    def _coalesce(self, c: int, size: int) -> int:
        """Merge a chunk leaving use with its free neighbours, into the unsorted bin or the top (R12c).

        The one merge of ``_int_free`` and ``malloc_consolidate``, which 2.36
        writes out twice (2.37 names it ``_int_free_merge_chunk``).  Returns
        the merged size; when the chunk joined the top, that is the top's size.

        Its loads: the next chunk's size and, unless that is the top, the
        in-use bit in the header of the chunk after it, a page further on as
        often as not, which a free of a block swapped out long ago faults
        in. The chunk's own header was loaded by the caller; a merged
        neighbour's header is stored to later in the same page.
        """
        w = self._w
        nxt = c + size
        top = self._top
        nxt_free = nxt in self._free
        if nxt_free or nxt == top:
            self._r(nxt + SIZE_SZ, SIZE_SZ)  # chunksize (nextchunk)
        else:
            w(nxt, 16)  # chunksize (nextchunk), then our foot and its PREV_INUSE cleared
        prev = self._free_end.get(c)
        if prev is not None:
            size += self._unlink(prev)
            c = prev
        if nxt != top:
            # inuse_bit_at_offset (nextchunk, nextsize)
            self._r(nxt + self._chunk_size(nxt) + SIZE_SZ, SIZE_SZ)
            if nxt_free:
                size += self._unlink(nxt)
                w(c + size, SIZE_SZ)  # foot
            self._to_unsorted(c, size)
            return size
        size += self._topsize
        self._top = c
        self._topsize = size
        w(c + SIZE_SZ, SIZE_SZ)
        return size

    def _split(self, c: int, size: int, nb: int, advertise: bool) -> int:
        """Hand out ``nb`` bytes of the free chunk ``c`` (already unlinked) (R19)."""
        rs = size - nb
        if rs < MINSIZE:
            self._r(c + SIZE_SZ, 3 * SIZE_SZ)  # unlink_chunk loaded its size and links
            self._w(c + size + SIZE_SZ, SIZE_SZ)  # next chunk's PREV_INUSE
            self._inuse[c] = size
            return c
        rem = c + nb
        self._w(c + SIZE_SZ, SIZE_SZ)
        self._to_unsorted(rem, rs)
        self._w(rem + rs, SIZE_SZ)  # foot
        if advertise:
            self._last_remainder = rem
        self._inuse[c] = nb
        return c

    # ------------------------------------------------------------------ malloc

    def _int_malloc(self, nb: int) -> int:
        """``_int_malloc`` for chunk size ``nb`` (R5); returns the chunk address or 0."""
        w = self._w
        r = self._r
        free = self._free
        if nb <= MAX_FAST:
            fb = self._fast[(nb >> 4) - 2]
            if fb:
                victim = fb.pop()
                self._r(victim + CHUNK_HDR_SZ, SIZE_SZ)  # its fd
                if self._tcache:
                    tci = (nb - 17) >> 4
                    tcb = self._tc[tci]
                    parked = self._parked
                    while len(tcb) < TCACHE_FILL_COUNT and fb:
                        tc = fb.pop()
                        del parked[tc]
                        self._tcache_put(tc, tcb, tci, nb)
                self._inuse[victim] = self._parked.pop(victim)
                return victim
        if nb < MIN_LARGE_SIZE:
            idx = nb >> 4
            b = self._small[idx]
            if b:
                victim = self._take_small(b, nb)
                if self._tcache:
                    tci = (nb - 17) >> 4
                    tcb = self._tc[tci]
                    while len(tcb) < TCACHE_FILL_COUNT and b:
                        self._tcache_put(self._take_small(b, nb), tcb, tci, nb)
                if not b:
                    self._binmap &= ~(1 << idx)
                self._inuse[victim] = nb
                return victim
        else:
            idx = _LARGEBIN[nb >> 6] if nb < _LARGEBIN_LIMIT else largebin_index(nb)
            if self._have_fast:
                self._consolidate()

        tci = (nb - 17) >> 4
        tcache_nb = nb if self._tcache and nb <= TCACHE_MAX_CHUNK else 0
        tcb = self._tc[tci] if tcache_nb else []
        return_cached = False
        unsorted = self._unsorted
        while True:
            iters = 0
            while unsorted:
                # The oldest chunk, with glibc's checks: its size and links, the next chunk's header
                # (size, prev_size), and the fd of the chunk its bk names, which then gets the bin.
                # The chunk's page and the next one's are loaded where no store to them follows.
                it = iter(unsorted)
                victim = next(it)
                bck = next(it, 0)
                size = free[victim]
                if bck:
                    w(bck + CHUNK_HDR_SZ, SIZE_SZ)
                if (
                    nb < MIN_LARGE_SIZE
                    and victim == self._last_remainder
                    and size > nb + MINSIZE
                    and len(unsorted) == 1
                ):
                    # Runs of small requests walk through the last remainder (R5.5): the bin is
                    # relinked around the new remainder without unlink_chunk.
                    self._out_of_unsorted(victim)
                    del free[victim]
                    del self._free_end[victim + size]
                    rem = victim + nb
                    rs = size - nb
                    self._to_unsorted(rem, rs)
                    self._last_remainder = rem
                    w(victim + SIZE_SZ, SIZE_SZ)
                    w(rem + rs, SIZE_SZ)
                    self._inuse[victim] = nb
                    return victim
                self._out_of_unsorted(victim)
                if size == nb:
                    del free[victim]
                    del self._free_end[victim + size]
                    w(victim + size + SIZE_SZ, SIZE_SZ)
                    if tcache_nb and len(tcb) < TCACHE_FILL_COUNT:
                        self._tcache_put(victim, tcb, tci, nb)
                        return_cached = True
                        continue
                    r(victim + SIZE_SZ, 3 * SIZE_SZ)
                    self._inuse[victim] = size
                    return victim
                # Sorted into its small or large bin, in glibc's order.
                r(victim + size, CHUNK_HDR_SZ)
                if size < MIN_LARGE_SIZE:
                    i = size >> 4
                    sb = self._small[i]
                    if sb:  # the bin's first (newest) chunk: "fwd->bk = victim"
                        w(next(reversed(sb)) + 3 * SIZE_SZ, SIZE_SZ)
                    sb[victim] = None
                    w(victim + CHUNK_HDR_SZ, 16)
                else:
                    i = _LARGEBIN[size >> 6] if size < _LARGEBIN_LIMIT else largebin_index(size)
                    self._to_large(self._large[i], victim, size)
                self._binmap |= 1 << i
                iters += 1
                if iters >= MAX_ITERS:
                    break
            if return_cached:
                return self._tcache_get(tcb, tci)

            if nb >= MIN_LARGE_SIZE:
                lb = self._large[idx]
                if lb:
                    r(lb[0] + SIZE_SZ, SIZE_SZ)  # the largest size: is any big enough?
                if lb and free[lb[0]] >= nb:
                    # Best fit: the smallest size >= nb, found up the size list from the smallest
                    # (each size's first chunk: size and bk_nextsize loaded); of equal sizes the
                    # second, so the size list's head stays (glibc's "avoid removing the first entry").
                    r(lb[0] + 5 * SIZE_SZ, SIZE_SZ)
                    h = len(lb)
                    while True:
                        size = free[lb[h - 1]]
                        h -= 1
                        while h and free[lb[h - 1]] == size:
                            h -= 1
                        r(lb[h] + SIZE_SZ, SIZE_SZ)
                        if size >= nb:
                            break
                        r(lb[h] + 5 * SIZE_SZ, SIZE_SZ)
                    if h + 1 < len(lb):
                        r(lb[h] + CHUNK_HDR_SZ, SIZE_SZ)  # its fd: the next chunk, of the same size?
                        r(lb[h + 1] + SIZE_SZ, SIZE_SZ)
                        if free[lb[h + 1]] == size:
                            h += 1
                    victim = lb[h]
                    del free[victim]
                    del self._free_end[victim + size]
                    self._unlink_large(lb, h, size)
                    if not lb:
                        self._binmap &= ~(1 << idx)
                    return self._split(victim, size, nb, False)

            m = self._binmap >> (idx + 1)
            if m:
                i = idx + (m & -m).bit_length()
                # The bin's last chunk (the oldest of a small bin, the smallest of a large one),
                # unlinked as unlink_chunk does.
                if i < 64:
                    b = self._small[i]
                    it = iter(b)
                    victim = next(it)
                    bck = next(it, 0)
                    if bck:
                        w(bck + CHUNK_HDR_SZ, SIZE_SZ)
                    del b[victim]
                    size = free.pop(victim)
                    if not b:
                        self._binmap &= ~(1 << i)
                else:
                    lb = self._large[i]
                    victim = lb[-1]
                    size = free.pop(victim)
                    self._unlink_large(lb, len(lb) - 1, size)
                    if not lb:
                        self._binmap &= ~(1 << i)
                del self._free_end[victim + size]
                return self._split(victim, size, nb, nb < MIN_LARGE_SIZE)

            if self._topsize >= nb + MINSIZE:
                return self._carve_top(nb)
            if self._have_fast:
                self._consolidate()
                continue
            return self._sysmalloc(nb)

    # ------------------------------------------------------------------ free

    def _int_free(self, c: int, size: int) -> None:
        """``_int_free`` (R12): tcache, fastbin, or coalesce and maybe trim.  ``c`` is no longer in use."""
        if size <= TCACHE_MAX_CHUNK and self._tcache:
            tci = (size - 17) >> 4
            tcb = self._tc[tci]
            if len(tcb) < TCACHE_FILL_COUNT:
                self._tcache_put(c, tcb, tci, size)
                return
        if size <= MAX_FAST:
            self._r(c + size + SIZE_SZ, SIZE_SZ)  # next chunk's size is checked
            self._have_fast = True
            self._fast[(size >> 4) - 2].append(c)
            self._parked[c] = size
            self._w(c + CHUNK_HDR_SZ, SIZE_SZ)  # fd
            return
        # free loaded the chunk's size (chunk_is_mmapped); the tcache and fastbin paths above store
        # into its page. Then a check loads the top's size.
        self._r(c + SIZE_SZ, SIZE_SZ)
        if self._contiguous and self._top and c + size != self._top:  # (else _coalesce loads it next)
            self._r(self._top + SIZE_SZ, SIZE_SZ)  # "nextchunk >= av->top + chunksize (av->top)"
        size = self._coalesce(c, size)
        if size >= FASTBIN_CONSOLIDATION_THRESHOLD:
            if self._have_fast:
                self._consolidate()
            if self._topsize >= self._trim:
                self._systrim(self._pad)

    # ------------------------------------------------------------------ realloc

    def _realloc_mmapped(self, c: int, oldsize: int, n: int) -> int:
        self._r(c, CHUNK_HDR_SZ)  # __libc_realloc and mremap_chunk read the header (prev_size, size)
        ps = self._ps
        nb = request2size(n)
        new_size = (nb + SIZE_SZ + ps - 1) & ~(ps - 1)
        if new_size == oldsize:
            return c + CHUNK_HDR_SZ
        cp: int = self._k.mremap(c, oldsize, new_size)
        if cp >= 0:
            del self._mmapped[c]
            self._mmapped[cp] = new_size
            self._mmapped_mem += new_size - oldsize
            self._w(cp + SIZE_SZ, SIZE_SZ)
            return cp + CHUNK_HDR_SZ
        if oldsize - SIZE_SZ >= nb:
            return c + CHUNK_HDR_SZ
        newmem = self.malloc(n)
        if not newmem:
            return 0
        self._copy(newmem, c + CHUNK_HDR_SZ, oldsize - CHUNK_HDR_SZ)
        self._munmap_chunk(c)  # no dynamic-threshold update on this path
        return newmem

    def _copy(self, dst: int, src: int, n: int) -> None:
        """realloc's ``memcpy``: each page of the destination written right after the source it takes is read.

        glibc copies forward (``__memmove_avx_unaligned_erms``; above the
        non-temporal threshold two or four pages at a time), so the kernel
        sees the source's reads and the destination's first touches
        interleaved, and the reclaim that those first touches set off meets
        the source part read and part not. Reading the whole source first
        made every reclaim pass of the copy find all of it read: on the churn
        trace ``t17`` (bench/churn_traces.py) a deep pass then left 2 361
        source pages marked ``PG_referenced`` without their accessed bit,
        which the kernel, having read most of them after its pass, activated
        instead (perf, ``vmscan:mm_vmscan_lru_shrink_inactive``: 4 735
        activations at the next sweep against the simulator's 2 389).
        """
        if n <= 0:
            return
        ps = self._ps
        r, w = self._r, self._w
        end = dst + n
        read_to = src  # the source is read up to here (each of its pages once)
        while dst < end:
            seg = min(end, (dst // ps + 1) * ps) - dst
            src_end = src + seg
            if src_end > read_to:
                r(read_to, src_end - read_to)
                read_to = (src_end + ps - 1) // ps * ps  # the rest of that page comes with it
            w(dst, seg)
            src = src_end
            dst += seg

    def _int_realloc(self, c: int, oldsize: int, nb: int) -> int:
        """``_int_realloc`` (R26): shrink, grow into top or a free next chunk, else move."""
        w = self._w
        nxt = c + oldsize
        r = self._r
        r(c + SIZE_SZ, SIZE_SZ)  # the old size (__libc_realloc's chunk_is_mmapped, then a check)
        r(nxt + SIZE_SZ, SIZE_SZ)  # chunksize (next), checked before anything else
        if oldsize < nb and nxt != self._top:
            r(nxt + self._chunk_size(nxt) + SIZE_SZ, SIZE_SZ)  # inuse (next): may it grow into it?
        if oldsize >= nb:
            newsize = oldsize
        elif nxt == self._top and oldsize + self._topsize >= nb + MINSIZE:
            self._topsize = oldsize + self._topsize - nb
            self._top = c + nb
            self._inuse[c] = nb
            w(c + SIZE_SZ, SIZE_SZ)
            w(c + nb + SIZE_SZ, SIZE_SZ)
            return c + CHUNK_HDR_SZ
        elif nxt != self._top and nxt in self._free and oldsize + self._free[nxt] >= nb:
            newsize = oldsize + self._unlink(nxt)
        else:
            if nb - (MALLOC_ALIGNMENT - 1) > PTRDIFF_MAX:
                return 0  # _int_malloc(nb - 15) fails its size check before any syscall
            nc = self._int_malloc(nb)
            if not nc:
                return 0
            if nc == nxt:
                # The new chunk was carved right after the old one (an extended top): merge.
                newsize = self._inuse.pop(nc) + oldsize
            else:
                self._copy(nc + CHUNK_HDR_SZ, c + CHUNK_HDR_SZ, oldsize - SIZE_SZ)
                del self._inuse[c]
                self._int_free(c, oldsize)
                return nc + CHUNK_HDR_SZ
        rs = newsize - nb
        if rs < MINSIZE:
            self._inuse[c] = newsize
            w(c + SIZE_SZ, SIZE_SZ)
            w(c + newsize + SIZE_SZ, SIZE_SZ)
        else:
            self._inuse[c] = nb
            rem = c + nb
            w(c + SIZE_SZ, SIZE_SZ)
            w(rem + SIZE_SZ, SIZE_SZ)
            w(rem + rs + SIZE_SZ, SIZE_SZ)
            self._int_free(rem, rs)
        return c + CHUNK_HDR_SZ

    # ------------------------------------------------------------------ diagnostics

    def _bad_pointer(self, func: str, p: int) -> str:
        c = p - CHUNK_HDR_SZ
        if c in self._parked:
            why = "double free (the chunk is in the tcache or a fastbin)"
        elif c in self._free:
            why = "double free (the chunk is already free)"
        else:
            why = "not a pointer malloc returned"
        return f"{func}(): invalid pointer {p:#x}: {why}"

    def check(self) -> None:
        """Raise ``HeapCorrupt`` on any inconsistency of the model's heap.

        Checked: chunks tile every arena segment exactly; sizes are aligned;
        every binned chunk is in the right bin once, with its boundary tag;
        large bins are sorted; the binmap matches; no two binned chunks and no
        binned chunk and the top are neighbours; fastbin/tcache sizes and
        counts; mmapped totals; mallinfo2's identities.
        """

        def fail(msg: str) -> None:
            raise HeapCorrupt(msg)

        walk = [(c, s, st) for c, s, st in self.heap_walk() if st != "mmapped"]
        segs = sorted(tuple(s) for s in self._segs)
        if self._topsize and not segs:
            fail("a top chunk without an arena segment")
        pos = 0
        seg_total = 0
        for start, end in segs:
            seg_total += end - start
            while pos < len(walk) and walk[pos][0] < start:
                fail(f"chunk {walk[pos][0]:#x} outside every segment")
            at = start
            while pos < len(walk) and walk[pos][0] < end:
                c, s, st = walk[pos]
                if c != at:
                    fail(f"gap or overlap at {at:#x}: next chunk starts at {c:#x} ({st})")
                if s % MALLOC_ALIGNMENT or (s < MINSIZE and c not in self._fence):
                    fail(f"chunk {c:#x} has a bad size {s}")
                at = c + s
                pos += 1
            if at != end:
                fail(f"segment [{start:#x}, {end:#x}) ends with a chunk ending at {at:#x}")
        if pos != len(walk):
            fail(f"chunk {walk[pos][0]:#x} outside every segment")
        if seg_total + self._gap != self._system_mem:
            fail(f"segments hold {seg_total + self._gap} bytes, system_mem is {self._system_mem}")
        if self._topsize:
            if self._topsize < MINSIZE:
                fail(f"top of {self._topsize} bytes is below MINSIZE")
            if self._contiguous and self._top + self._topsize != self._curbrk:
                fail(f"top ends at {self._top + self._topsize:#x}, the break is {self._curbrk:#x}")

        owners = [self._inuse, self._parked, self._free, self._fence]
        seen: set[int] = set()
        for d in owners:
            both = seen & d.keys()
            if both:
                fail(f"chunk {min(both):#x} is in two states")
            seen |= d.keys()

        binned: dict[int, int] = {}
        for c in self._unsorted:
            binned[c] = 1
        for i, b in enumerate(self._small):
            for c in b:
                if c in binned:
                    fail(f"chunk {c:#x} in two bins")
                binned[c] = i
                if self._free.get(c) != i << 4:
                    fail(f"chunk {c:#x} of size {self._free.get(c)} in small bin {i}")
        for i, lb in enumerate(self._large):
            sizes = [self._free.get(c, -1) for c in lb]
            if sizes != sorted(sizes, reverse=True):
                fail(f"large bin {i} is not sorted: {sizes}")
            for c, s in zip(lb, sizes, strict=True):
                if c in binned:
                    fail(f"chunk {c:#x} in two bins")
                binned[c] = i
                if s < MIN_LARGE_SIZE or largebin_index(s) != i:
                    fail(f"chunk {c:#x} of size {s} in large bin {i}")
        if binned.keys() != self._free.keys():
            fail("the free chunks and the bins disagree")
        for i in range(2, NBINS):
            nonempty = bool(self._small[i]) if i < 64 else bool(self._large[i])
            if bool(self._binmap >> i & 1) != nonempty:
                fail(f"binmap bit {i} is wrong")
        for c, s in self._free.items():
            if self._free_end.get(c + s) != c:
                fail(f"free chunk {c:#x} has no boundary tag")
            if c + s in self._free:
                fail(f"free chunks {c:#x} and {c + s:#x} are neighbours")
            if c + s == self._top and self._topsize:
                fail(f"free chunk {c:#x} borders the top")
        if len(self._free_end) != len(self._free):
            fail("stale boundary tags")

        fast_seen: set[int] = set()
        for i, fb in enumerate(self._fast):
            for c in fb:
                if self._parked.get(c) != (i + 2) << 4:
                    fail(f"fastbin {i} holds chunk {c:#x} of size {self._parked.get(c)}")
                fast_seen.add(c)
        tc_seen: set[int] = set()
        for i, tcb in enumerate(self._tc):
            if len(tcb) > TCACHE_FILL_COUNT:
                fail(f"tcache bin {i} holds {len(tcb)} chunks")
            for c in tcb:
                if (self._parked.get(c, 0) - 17) >> 4 != i:
                    fail(f"tcache bin {i} holds chunk {c:#x} of size {self._parked.get(c)}")
                tc_seen.add(c)
        if fast_seen & tc_seen or (fast_seen | tc_seen) != self._parked.keys():
            fail("parked chunks and the fastbins/tcache disagree")
        if len(fast_seen) + len(tc_seen) != len(self._parked):
            fail("a chunk is twice in the fastbins or the tcache")

        if self._n_mmaps != len(self._mmapped) or self._mmapped_mem != sum(self._mmapped.values()):
            fail("mmapped chunk counters disagree with the mapped chunks")
        mi = self.mallinfo2()
        if mi["uordblks"] + mi["fordblks"] != mi["arena"]:
            fail(f"uordblks + fordblks != arena: {mi}")
        if mi["ordblks"] < 1 or mi["uordblks"] < 0:
            fail(f"impossible mallinfo2: {mi}")
