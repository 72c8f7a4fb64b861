"""``netlab vm prepare|run|shell``: the stock-kernel VM (the library is :mod:`netlab.vm`)."""

from __future__ import annotations

import sys

import click

from .. import vm
from ..vm import runner

MEM = click.option("--mem", "mem_mb", type=click.IntRange(256), default=2048, show_default=True, metavar="MB",
                   help="Guest memory; the guest's writes (the tmpfs overlay) live in it too.")
RW = click.option("--rw", "rw", multiple=True, metavar="DIR",
                  help="Share this host directory writable, at the same path (results, junit xml). Repeatable.")
NET = click.option("--net", is_flag=True,
                   help="QEMU user-mode network (NAT through QEMU's own sockets; the host's network is untouched), e.g. for pip.")
VERBOSE = click.option("-v", "--verbose", is_flag=True, help="Say which kernel and accelerator; keep the kernel's messages.")


@click.group("vm")
def command() -> None:
    """Run anything inside a throw-away VM on the distribution's stock kernel.

    For what this machine's kernel lacks (ipip, netem, gre, dummy): the host's / is shared
    read-only with a tmpfs overlay on top, so the VM sees this checkout and its virtualenv, can
    write anywhere, and changes nothing on the host. KVM is used where it can run a stock kernel,
    QEMU's emulator (TCG) elsewhere."""


@command.command("prepare")
@click.option("--force", is_flag=True, help="Fetch and unpack again even if the kernel is cached.")
def prepare(force: bool) -> None:
    """Fetch the stock kernel package (apt-get download) and build the initramfs, once.

    The cache is $NETLAB_VM_CACHE (default /var/cache/netlab/vm)."""
    runner._require_root()
    k = vm.prepare(force=force)
    click.echo(f"{k.version} {k.dir}")


@command.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@MEM
@click.option("--timeout", type=click.FloatRange(min=1), metavar="S", help="Stop the VM after S seconds (exit 124).")
@RW
@NET
@VERBOSE
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
def run(mem_mb: int, timeout: float | None, rw: tuple[str, ...], net: bool, verbose: bool, argv: tuple[str, ...]) -> None:
    """Boot the VM, run ARGV as root in this directory, stream its output, exit with its code.

    \b
    netlab vm run -- netlab up calico-ipip
    netlab vm run --rw /tmp/out -- pytest -m needs_ipip --junitxml /tmp/out/j.xml"""
    sys.exit(runner.run(argv, runner.Options(mem_mb=mem_mb, timeout=timeout, rw=rw, verbose=verbose, net=net)))


@command.command("shell")
@MEM
@RW
@NET
@VERBOSE
def shell(mem_mb: int, rw: tuple[str, ...], net: bool, verbose: bool) -> None:
    """An interactive root shell in the VM (exit, or Ctrl-A X, stops it)."""
    sys.exit(runner.shell(runner.Options(mem_mb=mem_mb, rw=rw, verbose=verbose, net=net)))
