"""KVM or TCG: use KVM only where it can run a stock distribution kernel.

``/dev/kvm`` existing is not enough. A PVM host (``kvm_pvm``, "Pagetable-based Virtual Machine",
as found inside some cloud VMs without nested virtualisation) offers a ``/dev/kvm`` that runs only
guests whose kernel was built for PVM; a stock kernel does not boot there. Hardware KVM shows up
as the ``kvm_intel`` or ``kvm_amd`` module in ``/sys/module`` (built in or loaded: both have
parameters, so both appear there). Anything else falls back to TCG, QEMU's emulator, which is
slower (seconds to boot) but runs everywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HARDWARE_KVM = ("kvm_intel", "kvm_amd")
ENV = "NETLAB_VM_ACCEL"


@dataclass(frozen=True)
class Accel:
    name: str  # "kvm" or "tcg", as QEMU's -accel spells it
    reason: str


def choose(kvm_usable: bool, modules: frozenset[str], override: str | None = None) -> Accel:
    """Pure decision: ``kvm_usable`` is whether /dev/kvm can be opened read-write, ``modules``
    the names under /sys/module, ``override`` the NETLAB_VM_ACCEL value (kvm, tcg or empty)."""
    if override:
        if override not in ("kvm", "tcg"):
            from ..errors import NetlabError
            raise NetlabError(f"{ENV}={override} is not an accelerator netlab knows",
                              f"set {ENV}=kvm or {ENV}=tcg, or unset it to detect")
        return Accel(override, f"{ENV}={override}")
    if not kvm_usable:
        return Accel("tcg", "no usable /dev/kvm")
    hw = [m for m in HARDWARE_KVM if m in modules]
    if hw:
        return Accel("kvm", f"hardware KVM ({hw[0]})")
    if "kvm_pvm" in modules:
        return Accel("tcg", "/dev/kvm is PVM (kvm_pvm), which cannot run a stock kernel")
    return Accel("tcg", "/dev/kvm has no kvm_intel/kvm_amd behind it")


def detect(sys_module: Path = Path("/sys/module")) -> Accel:
    try:
        modules = frozenset(p.name for p in sys_module.iterdir() if p.name.startswith("kvm"))
    except OSError:
        modules = frozenset()
    usable = os.access("/dev/kvm", os.R_OK | os.W_OK)
    return choose(usable, modules, os.environ.get(ENV) or None)
