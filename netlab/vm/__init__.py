"""``netlab vm``: run anything inside a throw-away VM that boots the distribution's stock kernel.

Why: the kernel a test machine runs is often built without what some labs need (ipip for
``calico-ipip``, netem for faults, gre, dummy). The distribution's stock kernel has all of them,
and QEMU can boot it on any Linux host, with KVM where KVM can run a stock kernel and with TCG
(pure emulation) everywhere else.

How, in one line each (the modules explain why):

- :mod:`.kernel` fetches the stock kernel package with the system's package manager
  (``apt-get download``), unpacks it into a cache, turns its compressed ``vmlinuz`` back into the
  ELF ``vmlinux`` (booted through its PVH note: no BIOS boot sector, no in-guest decompression)
  and indexes its modules with ``depmod``.
- :mod:`.initramfs` builds a tiny initramfs from busybox-static and the few modules needed to
  reach the host's files (virtio-pci, 9p, overlay, virtio-console).
- :mod:`.guest` writes the scripts the guest runs: the host's ``/`` over 9p read-only, a tmpfs
  overlay on top (so the guest can write anywhere and the host sees none of it), an empty
  ``/run`` (a truly fresh machine), then the command as root.
- :mod:`.qemu` builds QEMU's argument vector, :mod:`.accel` picks KVM or TCG, and :mod:`.runner`
  boots, streams the command's stdout and stderr over virtio serial ports, and returns its exit
  code (written by the guest into a writable 9p share).
"""

from __future__ import annotations

from .kernel import Kernel, cache_dir, prepare
from .runner import run, shell

__all__ = ["Kernel", "cache_dir", "prepare", "run", "shell"]
