"""The protocol generations of the kernel model, as sets of hunks.

A generation is the set of hunks (:mod:`fuzzrmap.hunks`) that one range of
kernel versions has together; the hunks are declared beside the code they
switch.  A scenario's variants are generations plus or minus hunks.

* **G0** (up to v6.7): ``folio_move_anon_rmap()`` only ever moved a folio
  within one root, and ``folio_lock_anon_vma_read()`` has no
  ``folio->mapping`` recheck.  Run against the UFFDIO_MOVE mover it is the
  pre-patch reader the seed patch fixes.
* **G1** (v6.8 to v6.18): the seed patch, both rechecks.
"""

from fuzzrmap.hunks import Generation
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK

G0 = Generation("G0", "up to v6.7: folio_lock_anon_vma_read() without the rechecks", ())
G1 = Generation("G1", "v6.8 to v6.18: the seed patch, both folio->mapping rechecks",
                (FAST_RECHECK.name, SLOW_RECHECK.name))

GENERATIONS = {g.name: g for g in (G0, G1)}
