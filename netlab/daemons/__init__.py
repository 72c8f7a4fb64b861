"""Small long-running programs that labs start in their namespaces as :class:`netlab.plan.Daemon`
objects (``python -m netlab.daemons.<module> …``), supervised, logged to /run/netlab/<lab>/ and
stopped by ``netlab down``."""
