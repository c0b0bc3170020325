"""The protocol generations of the kernel model, as sets of hunks.

A generation is the set of hunks (:mod:`fuzzrmap.hunks`) that one range of
kernel versions has together; the hunks are declared beside the code they
switch.  A scenario's variants are generations plus or minus hunks.

* **G0** (up to v6.7): ``folio_move_anon_rmap()`` only ever moved a folio
  within one root, and ``folio_lock_anon_vma_read()`` has no
  ``folio->mapping`` recheck.  Run against the UFFDIO_MOVE mover it is the
  pre-patch reader the seed patch fixes.
* **G1** (v6.8 to v6.18): the seed patch, both rechecks.
* **G2** (the 2025 rework, "mm: always call rmap_walk() on locked folios" and
  "mm/userfaultfd: don't lock anon_vma when performing UFFDIO_MOVE"): every
  walker of an anon folio holds the folio lock (``folio_referenced()``,
  page_idle and DAMON trylock it), ``folio_lock_anon_vma_read()`` requires it
  and has neither the retry nor the rechecks, and UFFDIO_MOVE no longer takes
  the anon_vma lock (``userfaultfd.no_anon_vma_lock``, declared in
  :mod:`fuzzrmap.kernel.userfaultfd`).

G1 spans two shapes of UFFDIO_MOVE.  The model's code is the v6.14+ one
(per-VMA locks through ``uffd_move_lock()``, ``map_changing_lock``, the folio
trylocked under the source PTL before ``folio_get()``), so G1 as declared is
v6.14..v6.18; ``G1 + userfaultfd.move_v6_8`` is v6.8..v6.9 (``mmap_read_lock()``
for the whole move).  The two differ in what a same-mm munmap or fork can do
while a move runs (with per-VMA locks it takes ``mmap_lock`` and waits for the
VMAs the mover holds), which can change a verdict once scenarios race such
operations.  v6.10..v6.13 (per-VMA locks, folio_get() before the trylock)
differ from the v6.14+ code only in that order, which no modelled thread can
observe (nobody else takes the folio lock in G1).

Kernel-config hunks (``slab.CONFIG_SLUB_RCU_DEBUG``) belong to no generation:
a variant adds them.
"""

from fuzzrmap.hunks import Generation
from fuzzrmap.kernel import userfaultfd
from fuzzrmap.kernel.damon import TRYLOCK as DAMON_TRYLOCK
from fuzzrmap.kernel.page_idle import TRYLOCK as PAGE_IDLE_TRYLOCK
from fuzzrmap.kernel.rmap import FAST_RECHECK, LOCKED_WALK, SLOW_RECHECK

G0 = Generation("G0", "up to v6.7: folio_lock_anon_vma_read() without the rechecks", ())
G1 = Generation("G1", "v6.8 to v6.18: the seed patch, both folio->mapping rechecks",
                (FAST_RECHECK.name, SLOW_RECHECK.name))
G2 = Generation("G2", "the 2025 rework: every rmap walker holds the folio lock, no rechecks, "
                      "UFFDIO_MOVE without the anon_vma lock",
                (LOCKED_WALK.name, PAGE_IDLE_TRYLOCK.name, DAMON_TRYLOCK.name,
                 userfaultfd.NO_ANON_VMA_LOCK.name))

GENERATIONS = {g.name: g for g in (G0, G1, G2)}
