"""The naming scheme, in one place (as mininet keeps its naming in one module).

Namespaces carry the lab instance name so that two labs (or two instances of one lab file,
``netlab up vxlan --name v2``) can be up at the same time:

=================  ==============================  ================================
object             name                            example (lab ``vxlan``)
=================  ==============================  ================================
node namespace     ``<lab>-<node>``                ``vxlan-node1``
pod namespace      ``<lab>-<node>-<pod>``          ``vxlan-node1-pod1``
underlay switch    ``<lab>-switch`` (rack r:       ``vxlan-switch``
                   ``<lab>-switch<r>``)
underlay router    ``<lab>-router``                ``vxlan-router``
=================  ==============================  ================================

Interface names inside namespaces are the real ones (``eth0``, ``cni0``, ``flannel.1``,
``docker0``, ``cali<hash>``); they never need to be unique across namespaces, and nothing is ever
created in the root namespace.

MAC addresses that the real projects choose at random (a VTEP's MAC) are derived here from a hash
of the lab and node, so that a plan is a pure function of the lab file: ``status`` and ``explain``
can then name the exact MAC the kernel should hold.
"""

from __future__ import annotations

import hashlib
import re

# A lab instance name becomes part of namespace names and of /run/netlab/<lab>/.
LAB_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,23}$")
IFNAMSIZ = 15  # the kernel's limit for an interface name, without the trailing NUL

SWITCH = "switch"
ROUTER = "router"
STATE_DIR = "/run/netlab"
MARKER_PREFIX = "netlab:"


def check_instance(name: object) -> str:
    """The one rule for a lab instance name, used by every verb (``up --name``, ``down``,
    ``status``, ``exec``, …) before the name touches a path: 1-24 characters, lowercase letters,
    digits and '-', starting with a letter. So ``../x``, ``''`` and a 10 kB argument are refused
    the same way everywhere, and ``/run/netlab/<name>`` can never leave the state root."""
    from .errors import NetlabError

    text = name if isinstance(name, str) else repr(name)
    if not isinstance(name, str) or not LAB_NAME_RE.match(name):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise NetlabError(f"lab name {shown!r} is not allowed",
                          "use 1-24 characters: lowercase letters, digits and '-', starting with a letter")
    return name


def node_name(index: int) -> str:
    """Nodes are ``node1 … nodeN`` (1-based, like the subnets 10.244.1.0/24 … they get)."""
    return f"node{index}"


def pod_name(index: int) -> str:
    return f"pod{index}"


def ns(lab: str, *parts: str) -> str:
    """Namespace name: the lab instance name, then the path to the host (node, pod)."""
    return "-".join((lab, *parts))


def switch_name(rack: int, racks: int) -> str:
    return SWITCH if racks == 1 else f"{SWITCH}{rack}"


def digest(*parts: str) -> bytes:
    return hashlib.sha1("/".join(parts).encode()).digest()


def mac(*parts: str) -> str:
    """A stable, locally administered unicast MAC (first octet xxxxxx10) from a hash."""
    b = bytearray(digest(*parts)[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def docker_mac(*parts: str) -> str:
    """A Docker bridge's MAC: ``02:42`` and four bytes from a hash.

    dockerd gives docker0 ``GenerateRandomMAC()``, ``02:42`` and four random bytes (the same
    prefix as its containers' ``genMAC``, ``02:42`` + the IPv4 address); netlab keeps the prefix
    and draws the four bytes from a hash, so the plan stays a pure function of the lab file."""
    return "02:42:" + ":".join(f"{x:02x}" for x in digest(*parts)[:4])


def host_veth(*parts: str) -> str:
    """The host end of a pod's veth, as the CNI bridge plugin names it: ``veth`` + 8 hex digits.

    The plugin draws the digits at random; netlab hashes the pod's identity instead, so the name
    is the same on every run and can be checked by ``status``.
    """
    return "veth" + digest(*parts).hex()[:8]


RUN = "{run}"  # in plan paths and argv: the lab's state directory, known only once it is up


def expand_run(text: str, run_dir: object) -> str:
    """``text`` with every ``{run}`` replaced by the lab's state directory: the one expansion of
    the placeholder (explain writes ``$run`` instead, a shell variable the script sets)."""
    return text.replace(RUN, str(run_dir))


def state_root() -> str:
    """The root of every lab's state directory: /run/netlab, or ``NETLAB_STATE_DIR``."""
    import os

    return os.environ.get("NETLAB_STATE_DIR", STATE_DIR)


def state_dir(lab: str) -> str:
    """Where instance ``lab`` keeps its state, logs and daemon configs: what hints print, so a
    copied command line works as printed wherever ``NETLAB_STATE_DIR`` moved the state."""
    return f"{state_root()}/{lab}"


def marker(lab: str, token: str) -> str:
    """The ownership marker written into every namespace netlab creates (``lo``'s ifalias)."""
    return f"{MARKER_PREFIX}{lab}:{token}"


def check_ifname(name: str) -> str:
    if not name or len(name) > IFNAMSIZ or "/" in name or " " in name:
        raise ValueError(f"bad interface name {name!r} (1..{IFNAMSIZ} characters, no '/' or space)")
    return name


def python() -> str:
    """The interpreter a daemon of the plan runs under, spelled the same however netlab itself was
    started (``.venv/bin/netlab`` runs ``bin/python``, ``.venv/bin/pytest`` ``bin/python3``, and
    ``python -m netlab`` whatever was typed). The plan is compared with what runs, so one lab must
    always plan the same argv: the environment's own ``bin/python3`` when it has one (a venv's
    keeps the venv's packages, unlike the real path it links to), else the running one."""
    import os
    import sys

    candidate = os.path.join(sys.prefix, "bin", "python3")
    return candidate if os.path.exists(candidate) else sys.executable


def daemon_argv(module: str, *args: str) -> tuple[str, ...]:
    """A netlab daemon module (``netlab/daemons/<module>.py``) run by :func:`python`."""
    return (python(), "-m", f"netlab.daemons.{module}", *args)
