"""``netlab bench``: iperf3 across every datapath, side by side, against the seed's claims.

Users choose a CNI on claims like "VXLAN costs 20–30 %". netlab builds the real datapaths, so it
can measure them on the user's own kernel in one command, with the two figures that make any
ratio meaningful measured in the same run: the bare underlay (node to node, what every lab sits
on) and a single veth pair (the raw limit of this kernel and CPU).

Modules, in the order data flows:

- :mod:`.targets`  — which labs can be measured and why not; endpoints from the plan; baselines;
  the same lab built by its ``explain`` script;
- :mod:`.iperf`    — iperf3 server/client in namespaces, PID-tracked, receiver-side rates;
- :mod:`.offload`  — TSO/GSO off (and back) on the sender side, inside the lab's namespaces;
- :mod:`.runner`   — the interleaved schedule and the run itself (teardown and cleanup in finally);
- :mod:`.stats`, :mod:`.claims` — pure: summaries, ratios, the seed's claims and verdicts;
- :mod:`.report`   — analysis, rich tables, JSON, matplotlib chart.
"""

from .runner import Settings, run

__all__ = ["Settings", "run"]
