"""What the UFFDIO_MOVE scenarios share: the actor catalogue and their variants.

Each scenario is a composition of the kernel's actors
(:mod:`fuzzrmap.kernel.actors`) over the common state of spec section 4,
with a name of its own and expected verdicts.  Exporting ``CATALOGUE`` here
makes every other composition a scenario too, by its name.
"""

from __future__ import annotations

from fuzzrmap.kernel.actors import CATALOGUE
from fuzzrmap.kernel.generations import G0, G1, G2
from fuzzrmap.kernel.rmap import FAST_RECHECK, SLOW_RECHECK
from fuzzrmap.scenario import CLEAN, FAILS, Variant

__all__ = ["CATALOGUE", "variants"]


def variants(no_slow_recheck_expect: str, fixed_expect: str = CLEAN, g2_expect: str = CLEAN) -> tuple:
    return (
        Variant("fixed", fixed_expect, "G1 as merged: both folio->mapping rechecks", G1),
        Variant("unpatched", FAILS, "G0 reader (before the seed patch) against the UFFDIO_MOVE mover", G0),
        Variant("no-fast-recheck", FAILS, "only the slow-path recheck (hunk 2)", G1, remove=[FAST_RECHECK]),
        Variant("no-slow-recheck", no_slow_recheck_expect, "only the fast-path recheck (hunk 1)", G1,
                remove=[SLOW_RECHECK]),
        Variant("g2", g2_expect, "G2: every rmap walker holds the folio lock, no rechecks", G2),
    )
