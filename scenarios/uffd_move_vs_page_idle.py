"""Spec S2: page_idle (no try_lock, so fast *and* slow path) against UFFDIO_MOVE.

The mover write-locks the source root, so a reader that arrives meanwhile
fails the trylock, pins the anon_vma, sleeps in ``down_read`` and wakes after
the move.  Without the slow-path recheck it returns the source anon_vma while
the folio lives under the destination root: the walk misses the only mapping
and the returned lock no longer stabilises the folio's rmap (I1c/I1d).  The
fast-path race of S1 is reachable too.  As in the spec, no thread re-uses the
freed anon_vma here; ``uffd-move-vs-page-idle-fork`` adds one.
"""

from fuzzrmap.kernel.page_idle import page_idle_clear_pte_refs
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.scenario import FAILS, Scenario

from fuzzrmap.scenarios import uffd_common


SCENARIO = Scenario(
    name="uffd-move-vs-page-idle",
    spec="S2",
    summary="page_idle_clear_pte_refs() (unlocked, blocking) vs UFFDIO_MOVE + munmap",
    variants=uffd_common.variants(no_slow_recheck_expect=FAILS),
    setup=uffd_common.setup_with(page_idle_clear_pte_refs, fork=False),
    environment=KERNEL,
)
