"""Ready, not just built: wait after apply until a lab's daemons have produced what the plan
expects (BIRD's sessions Established and every remote block routed).

A Calico lab is complete in the kernel the moment apply returns, yet no pod can reach another
node until BGP converges. ``up`` therefore polls the datapath's readiness probe
(:attr:`netlab.datapaths.Datapath.ready`) until it says done, and rolls the lab back with one
line naming what is still missing if it never does.
"""

from __future__ import annotations

import time
from typing import Callable

from .kernel.limits import GC_THRESH, NotReady, neighbour_table, record_baseline


def settle(dp, handle, progress: Callable[[str], None] | None, wait: float | None) -> None:
    """After apply: record the neighbour table's baseline, then, unless ``wait`` is falsy, poll
    the datapath's readiness probe (``dp.ready``) until it says done, for at most ``wait`` s.

    Raises :class:`NotReady` (one line: what is still missing) when time runs out; ``up`` then
    rolls the lab back, as for any failure before it is complete."""
    record_baseline(handle.state)
    if dp.ready is None or not wait:
        return
    t0 = time.monotonic()
    probe = dp.ready(handle)
    shown, last = "", 0.0
    try:
        for r in probe:
            now = time.monotonic()
            if r.done:
                if progress:
                    progress(f"ready after {now - t0:.1f}s: {r.summary}")
                return
            if progress and r.summary != shown and now - last >= 1.0:
                progress(f"waiting ({now - t0:.0f}s of {wait:g}s): {r.summary}")
                shown, last = r.summary, now
            if now - t0 > wait:
                raise _not_ready(handle, wait, r)
            time.sleep(0.25)
    finally:
        probe.close()


def _not_ready(handle, wait: float, r) -> NotReady:
    """One line: what is still missing (the first item, and how many more), and an overflow of
    the neighbour table if there was one, since that is then the likely cause."""
    more = f" (+{len(r.missing) - 1} more)" if len(r.missing) > 1 else ""
    table = neighbour_table(handle.state)
    why = (f"; the neighbour table was full {table['overflows']} times ({GC_THRESH.format(3)} = {table['gc_thresh3']})"
           if table.get("overflows") else "")
    first = r.missing[0] if r.missing else "?"
    return NotReady(f"lab '{handle.name}' not usable after {wait:g}s ({r.summary}): {first}{more}{why}",
                    "rolled back; try --wait-timeout SECONDS, or --no-wait to keep it")
