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

The window needs the slab's immediate re-use of the freed slot.  Variant
``slub-rcu-debug`` adds the config hunk ``slab.CONFIG_SLUB_RCU_DEBUG``
(v6.12+, on with KASAN): every free from a ``SLAB_TYPESAFE_BY_RCU`` cache
waits a grace period before its slot is handed out again, so fork cannot get
the slot while the reader's RCU section lasts, and the window closes.
"""

from fuzzrmap.kernel.generations import G1
from fuzzrmap.kernel.slab import SLUB_RCU_DEBUG
from fuzzrmap.scenario import CLEAN, FAILS, Variant

from fuzzrmap.scenarios import uffd_common


SCENARIO = uffd_common.CATALOGUE.compose("page-idle", "uffd-move(src=S)", "munmap(vma=S)", "fork").scenario(
    name="uffd-move-vs-page-idle-fork",
    spec="S2+Y",
    summary="page_idle vs UFFDIO_MOVE + munmap + fork re-using the slot: a window the patch leaves open",
    variants=uffd_common.variants(no_slow_recheck_expect=FAILS, fixed_expect=FAILS) + (
        Variant("slub-rcu-debug", CLEAN, "G1 with CONFIG_SLUB_RCU_DEBUG: a freed anon_vma's slot waits a grace period",
                G1, add=[SLUB_RCU_DEBUG]),
    ),
)
