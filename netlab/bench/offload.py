"""TSO/GSO on the sender side of a path, switched off and restored with ethtool *inside* the
lab's namespaces.

With offloads on, the sending TCP stack hands 64 KB super-segments down the path and they are cut
to MTU size only at the very end (or never, between namespaces on one host): one routing
decision, one encapsulation, one iptables pass per 64 KB. A real NIC-less path, or a NIC without
tunnel offload, pays those per 1.4 KB packet. ``--offload off`` makes the lab pay per packet too,
which is what the seed's percentages were measured with.

Only interfaces in namespaces the bench was told are the sender side (the source pod and its
node) are touched; the previous setting of each feature is recorded and put back afterwards.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass

from ..kernel import procs

FEATURES = {"tso": "tcp-segmentation-offload", "gso": "generic-segmentation-offload"}


@dataclass(frozen=True)
class Saved:
    """One interface's offload settings before the bench changed them."""

    ns: str
    dev: str
    settings: tuple[tuple[str, str], ...]  # (("tso", "on"), ("gso", "on"))


def interfaces(ns: str) -> list[str]:
    """Every interface of ``ns`` except loopback (read with ``ip -j link`` inside it); none if
    the namespace is gone."""
    from ..kernel import netns

    if not netns.exists(ns):
        return []
    try:
        out = procs.run(ns, ["ip", "-j", "link", "show"]).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    try:
        links = json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        return []
    return [lk["ifname"] for lk in links if lk.get("ifname") and lk.get("link_type") != "loopback"]


def read(ns: str, dev: str) -> dict[str, tuple[str, bool]]:
    """{"tso": ("on", fixed?), "gso": (...)} from ``ethtool -k``."""
    try:
        out = procs.run(ns, ["ethtool", "-k", dev]).stdout
    except (OSError, subprocess.SubprocessError):  # the namespace vanished meanwhile
        return {}
    found: dict[str, tuple[str, bool]] = {}
    for line in out.splitlines():
        name, _, rest = line.partition(":")
        for short, long in FEATURES.items():
            if name.strip() == long:
                words = rest.split()
                if words:
                    found[short] = (words[0], "[fixed]" in rest)
    return found


def _set(ns: str, dev: str, settings: dict[str, str]) -> bool:
    if not settings:
        return True
    from ..kernel import netns

    if not netns.exists(ns):
        return False
    argv = ["ethtool", "-K", dev]
    for k, v in settings.items():
        argv += [k, v]
    try:
        return procs.run(ns, argv).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def disable(namespaces: list[str]) -> list[Saved]:
    """Turn TSO and GSO off on every interface of ``namespaces``; return what to restore."""
    saved = []
    for ns in namespaces:
        for dev in interfaces(ns):
            cur = read(ns, dev)
            changeable = {k: v for k, (v, fixed) in cur.items() if not fixed and v == "on"}
            if changeable and _set(ns, dev, {k: "off" for k in changeable}):
                saved.append(Saved(ns, dev, tuple(changeable.items())))
    return saved


def restore(saved: list[Saved]) -> None:
    """Put back what :func:`disable` changed (namespaces already torn down are skipped)."""
    from ..kernel import netns

    for s in saved:
        if netns.exists(s.ns):
            _set(s.ns, s.dev, dict(s.settings))


def state(namespaces: list[str]) -> dict[str, dict[str, str]]:
    """``{"ns/dev": {"tso": "off", "gso": "off"}}``: recorded in the JSON next to each run."""
    out = {}
    for ns in namespaces:
        for dev in interfaces(ns):
            out[f"{ns}/{dev}"] = {k: v for k, (v, _) in read(ns, dev).items()}
    return out
