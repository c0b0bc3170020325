"""The fast-path retry of the patched reader returns a stale anon_vma, unlocked.

Found by ``fuzzrmap hunt`` (G1), as the composition
``referenced+uffd-move(src=S)+munmap(vma=D)``:

1. reclaim's ``folio_referenced()`` loads ``folio->mapping`` = anon_vma#1
   (S's) and ``root`` (L1-L3), and is delayed there, inside its RCU
   read-side section;
2. UFFDIO_MOVE moves F to D (``folio->mapping`` = anon_vma#2) and finishes;
3. munmap of D zaps the PTE: F is no longer mapped;
4. the reader's trylock of anon_vma#1's root succeeds (L4); the recheck (L5)
   sees the move, drops the lock and ``goto retry`` - but, unlike the
   slow-path recheck, leaves ``anon_vma`` set;
5. on the retry ``folio_mapped()`` is false (L2), so the function jumps to
   ``out:`` and returns the stale anon_vma#1 *without* its lock (I1a).

``rmap_walk_anon()`` then walks anon_vma#1's tree unlocked and calls
``anon_vma_unlock_read()`` on a rwsem it never took.  The same happens when
the retry finds ``folio->mapping`` no longer anon.  Setting ``anon_vma =
NULL`` before ``goto retry`` on the fast path, as the slow path does, closes
it: the variant ``proposed`` (hunk ``rmap.retry_resets_anon_vma``) is verified
clean.  G0 has no retry; G2 removes the retry and both rechecks.
"""

from fuzzrmap.kernel.generations import G1
from fuzzrmap.kernel.rmap import RETRY_RESETS
from fuzzrmap.scenario import CLEAN, FAILS, Variant

from fuzzrmap.scenarios import uffd_common


SCENARIO = uffd_common.CATALOGUE.compose("referenced", "uffd-move(src=S)", "munmap(vma=D)").scenario(
    name="uffd-move-vs-referenced-unmap-dst",
    spec="S1+U",
    summary="folio_referenced() vs UFFDIO_MOVE + munmap of the destination: the fast-path retry returns unlocked",
    variants=uffd_common.variants(no_slow_recheck_expect=FAILS, fixed_expect=FAILS) + (
        Variant("proposed", CLEAN, "G1 with anon_vma = NULL before the fast path's goto retry", G1,
                add=[RETRY_RESETS]),
    ),
)
