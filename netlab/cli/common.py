"""Options several verbs share: the lab overrides."""

from __future__ import annotations

import functools

import click

from ..errors import LabFileError


def override_options(f):
    @click.option("--name", help="Instance name (default: the lab file's name); run a second copy with another.")
    @click.option("--nodes", type=int, help="Number of nodes.")
    @click.option("--pods", type=int, help="Pods per node.")
    @click.option("--racks", type=int, help="Underlay racks (switches behind one router).")
    @click.option("--underlay-mtu", "mtu", type=int, help="Underlay MTU.")
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Datapath option, e.g. -o vni=5 (see the lab file's options:).")
    @functools.wraps(f)
    def wrapper(*args, name, nodes, pods, racks, mtu, options, **kw):
        opts = {}
        for item in options:
            if "=" not in item:
                raise LabFileError(f"option '{item}' is not KEY=VALUE", "write it like -o vni=5")
            k, v = item.split("=", 1)
            opts[k.strip()] = v.strip()
        overrides = {"nodes": nodes, "pods": pods, "racks": racks, "mtu": mtu, "options": opts}
        return f(*args, name=name, overrides=overrides, **kw)

    return wrapper
