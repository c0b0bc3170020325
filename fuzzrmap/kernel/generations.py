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
  the anon_vma lock (that hunk is declared in
  :mod:`fuzzrmap.kernel.userfaultfd` when the mover has it).
"""

from fuzzrmap.hunks import Generation
from fuzzrmap.kernel import userfaultfd
from fuzzrmap.kernel.damon import TRYLOCK as DAMON_TRYLOCK
from fuzzrmap.kernel.page_idle import TRYLOCK as PAGE_IDLE_TRYLOCK
from fuzzrmap.kernel.rmap import FAST_RECHECK, LOCKED_WALK, SLOW_RECHECK

G0 = Generation("G0", "up to v6.7: folio_lock_anon_vma_read() without the rechecks", ())
G1 = Generation("G1", "v6.8 to v6.18: the seed patch, both folio->mapping rechecks",
                (FAST_RECHECK.name, SLOW_RECHECK.name))
_G2_MOVER = [h.name for h in (getattr(userfaultfd, "NO_ANON_VMA_LOCK", None),) if h is not None]
G2 = Generation("G2", "the 2025 rework: every rmap walker holds the folio lock, no rechecks"
                      + ("" if _G2_MOVER else " (mover: the G1 UFFDIO_MOVE, which still takes the anon_vma lock)"),
                (LOCKED_WALK.name, PAGE_IDLE_TRYLOCK.name, DAMON_TRYLOCK.name, *_G2_MOVER))

GENERATIONS = {g.name: g for g in (G0, G1, G2)}
