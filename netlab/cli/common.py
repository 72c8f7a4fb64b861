"""Options several verbs share: the lab overrides."""

from __future__ import annotations

import functools

import click

from ..errors import LabFileError
from ..model import shown


class Integer(click.ParamType):
    """click's INT, except that a wrong value is echoed cut short (click echoes all of it)."""

    name = "integer"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if len(text) <= 18 and text.lstrip("+-").isascii() and text.lstrip("+-").isdigit():
            return int(text)
        self.fail(f"{shown(value)!r} is not an integer", param, ctx)


INTEGER = Integer()


def override_options(f):
    @click.option("--name", help="Instance name (default: the lab file's name); run a second copy with another.")
    @click.option("--nodes", type=INTEGER, help="Number of nodes.")
    @click.option("--pods", type=INTEGER, help="Pods per node.")
    @click.option("--racks", type=INTEGER, help="Underlay racks (switches behind one router).")
    @click.option("--underlay-mtu", "mtu", type=INTEGER, help="Underlay MTU.")
    @click.option("--underlay-cidr", "cidr", metavar="CIDR",
                  help="Underlay network per rack (nodes are .11 and up): a /20 holds 4085 nodes.")
    @click.option("--pod-cidr", metavar="CIDR", help="Cluster pod network (flannel: a /24 per node from it).")
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Datapath option, e.g. -o vni=5 (see the lab file's options:).")
    @functools.wraps(f)
    def wrapper(*args, name, nodes, pods, racks, mtu, cidr, pod_cidr, options, **kw):
        opts = {}
        for item in options:
            if "=" not in item:
                raise LabFileError(f"option {shown(item)!r} is not KEY=VALUE", "write it like -o vni=5")
            k, v = item.split("=", 1)
            opts[k.strip()] = v.strip()
        overrides = {"nodes": nodes, "pods": pods, "racks": racks, "mtu": mtu, "cidr": cidr, "pod_cidr": pod_cidr,
                     "options": opts}
        return f(*args, name=name, overrides=overrides, **kw)

    return wrapper


# -- shell completion (click's: eval "$(_NETLAB_COMPLETE=bash_source netlab)") ---------------------
# Every candidate is read without root and without touching the kernel: lab files from the labs
# search path, instances from the state root, host names from an instance's recorded state.

def _items(values: list[str], incomplete: str) -> list:
    from click.shell_completion import CompletionItem

    return [CompletionItem(v) for v in sorted(set(values)) if v.startswith(incomplete)]


def _instances() -> list[str]:
    from .. import state

    try:
        return [s.lab for s in state.all_labs()]
    except Exception:  # completion must never print a traceback into the user's shell  # noqa: BLE001
        return []


def complete_lab(ctx, param, incomplete: str) -> list:
    """Lab file names and running instances (``up``, ``explain``, ``graph`` take either)."""
    from .. import model

    return _items([p.stem for p in model.available()] + _instances(), incomplete)


def complete_instance(ctx, param, incomplete: str) -> list:
    return _items(_instances(), incomplete)


def complete_host(ctx, param, incomplete: str) -> list:
    """The hosts of the instance named earlier on the command line (node1, node1-pod1, switch …)."""
    from .. import state

    lab = ctx.params.get("lab")
    try:
        names = state.load(lab).namespaces if lab else []
    except Exception:  # noqa: BLE001
        names = []
    return _items([n[len(lab) + 1:] for n in names if lab and n.startswith(lab + "-")], incomplete)
