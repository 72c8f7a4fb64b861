"""netlab: build the real Linux datapaths behind container networking, then look inside them.

The flow is lab file -> model -> plan -> apply -> verify -> teardown:

- :mod:`netlab.model` reads a lab file into typed, validated objects;
- :mod:`netlab.topology` resolves names and underlay addresses (pure);
- a module in :mod:`netlab.datapaths` turns the model into a :class:`netlab.plan.Plan`,
  the desired kernel objects per namespace (pure data, no root needed);
- :mod:`netlab.kernel.apply` is the only code that writes to the kernel (netlink via pyroute2);
- :mod:`netlab.kernel.verify` reads the kernel back and diffs it against the same plan;
- :mod:`netlab.kernel.teardown` removes exactly what the state file says the lab created.
"""

__version__ = "0.1.0"
