"""Spec S1: ``folio_referenced()`` (try_lock, fast path only) against UFFDIO_MOVE.

Reclaim ages an active anon folio without its folio lock while UFFDIO_MOVE
moves it to a VMA with another anon_vma root, the source VMA is unmapped (its
anon_vma freed) and a fork re-allocates the freed slot.  Without the
fast-path recheck the reader returns the source anon_vma - freed, or re-used
with another root - as if it were the folio's: a wrong-tree walk, a
use-after-free after the grace period, an unlock of a lock it never took.

``try_lock`` makes the slow path unreachable (contention returns -1), so
dropping only the slow-path recheck is harmless here.
"""

from fuzzrmap.kernel.rmap import folio_referenced
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.scenario import CLEAN, Scenario

from fuzzrmap.scenarios import uffd_common


async def reclaim_ages(folio):
    """shrink_active_list() ages an anon folio it isolated, without its lock."""
    await folio_referenced(folio, is_locked=False)


SCENARIO = Scenario(
    name="uffd-move-vs-referenced",
    spec="S1",
    summary="folio_referenced() (unlocked, try_lock) vs UFFDIO_MOVE + munmap + slot re-use",
    variants=uffd_common.variants(no_slow_recheck_expect=CLEAN),
    setup=uffd_common.setup_with(reclaim_ages, fork=True),
    environment=KERNEL,
)
