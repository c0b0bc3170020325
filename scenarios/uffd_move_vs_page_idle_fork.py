"""S2 plus slot re-use: page_idle against UFFDIO_MOVE, munmap *and* fork.

This scenario exposes a window that the seed patch leaves open on the slow
path, found by ``fuzzrmap explore`` (the spec expected none):

1. the reader loads ``folio->mapping`` = anon_vma#1 (L1) and ``root`` (L3);
2. UFFDIO_MOVE moves F to D's anon_vma#2 and finishes; munmap of S begins
   ``unlink_anon_vmas`` and holds anon_vma#1's rwsem for write, so the
   reader's trylock (L4) fails;
3. munmap drops the last reference: anon_vma#1 is freed;
4. a fork in another process allocates its child's anon_vma into that slot
   (``anon_vma_alloc()``: refcount 1, ``root`` = itself) and, before it sets
   ``root`` to the parent's root, may sleep in ``anon_vma_chain_alloc()``;
5. the reader pins the new object (S2: ``atomic_inc_not_zero`` succeeds), sees
   F still mapped (S3: it is, in D), and ``anon_vma_lock_read()`` read-locks
   the slot's own rwsem (S5: root is still itself);
6. fork sets ``root`` to the parent's root (FK5);
7. the recheck (S6) sees the move and calls ``anon_vma_unlock_read()``, which
   re-reads ``root``: it releases the *parent's* rwsem, which the reader never
   took, and leaves the slot's rwsem read-held for ever (I7).

Before UFFDIO_MOVE, "the folio is still mapped" (S3) meant "its anon_vma was
not freed", so the pinned object could not be a re-used one.  A cross-root
move breaks that, and S6 unlocks through a ``root`` that may have changed
since S5.  Unlocking through the root that S5 actually locked (as the fast
path does with ``root_anon_vma``) would close the window.

folio_referenced() is not affected: with ``try_lock`` it never takes the slow
path.
"""

from fuzzrmap.kernel.page_idle import page_idle_clear_pte_refs
from fuzzrmap.kernel.environment import KERNEL
from fuzzrmap.scenario import FAILS, Scenario

from fuzzrmap.scenarios import uffd_common


SCENARIO = Scenario(
    name="uffd-move-vs-page-idle-fork",
    spec="S2+Y",
    summary="page_idle vs UFFDIO_MOVE + munmap + fork re-using the slot: a window the patch leaves open",
    variants=uffd_common.variants(no_slow_recheck_expect=FAILS, fixed_expect=FAILS),
    setup=uffd_common.setup_with(page_idle_clear_pte_refs, fork=True),
    environment=KERNEL,
)
