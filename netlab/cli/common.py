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
    @click.option("-o", "--option", "options", multiple=True, metavar="KEY=VALUE",
                  help="Datapath option, e.g. -o vni=5 (see the lab file's options:).")
    @functools.wraps(f)
    def wrapper(*args, name, nodes, pods, racks, mtu, options, **kw):
        opts = {}
        for item in options:
            if "=" not in item:
                raise LabFileError(f"option {shown(item)!r} is not KEY=VALUE", "write it like -o vni=5")
            k, v = item.split("=", 1)
            opts[k.strip()] = v.strip()
        overrides = {"nodes": nodes, "pods": pods, "racks": racks, "mtu": mtu, "options": opts}
        return f(*args, name=name, overrides=overrides, **kw)

    return wrapper
