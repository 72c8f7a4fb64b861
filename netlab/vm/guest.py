"""The scripts the guest runs, as text (pure: the host writes them, the guest only executes).

Three stages, each as small as its environment allows:

1. ``INIT`` is the initramfs's ``/init``, run by busybox-static. It never changes between runs,
   so the initramfs is built once per kernel: it mounts /proc, /sys and devtmpfs, loads the
   modules needed to reach the host (virtio-pci, 9p, overlay, virtio-console; a stock kernel
   builds them as modules), mounts this run's control share and sources ``boot.sh`` from it.
2. ``boot_script`` (still busybox, still the initramfs) assembles the root: the host's ``/`` over
   9p, read-only and cached (``cache=loose``: nothing changes it during a run), under an overlay
   whose upper layer is a tmpfs. The guest may write anywhere; writes land in guest memory and
   vanish with the VM, and the host's files are never changed. ``/run`` is a new, empty tmpfs, as
   on a machine that just booted (the host's /run/netns and /run/netlab are not there). The
   unpacked modules are bind-mounted at /lib/modules/<version> so that ``modprobe`` (and the
   kernel's own module autoloading, which calls it) finds them. Writable shares are mounted at
   the same paths as on the host, with ``cache=none`` so that what the guest writes is on the
   host's disk before the VM stops. Then ``switch_root``.
3. ``stage2_script`` runs as PID 1 with the host's own /bin/sh and tools: it creates what udev
   would have (``/dev/net/tun``, ``/dev/fd``), brings ``lo`` up, runs the command as root in the
   caller's directory and environment with stdout and stderr on the virtio ports, writes its exit
   status into the control share and reboots (QEMU runs with ``-no-reboot``, so it exits). While
   the command runs, PID 1 (dash) waits for any child, which also reaps the orphans that
   daemonising lab processes leave behind.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from .qemu import CTL_TAG, ROOT_TAG

OUT_PORT = "netlab.stdout"
ERR_PORT = "netlab.stderr"
MSIZE = 512000  # 9p message size: the most virtio transport takes; fewer round trips per read
ROOT_CACHE = "loose"
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_console")
APPLETS = ("sh", "mount", "insmod", "mkdir", "cat", "echo", "switch_root", "ln", "ls", "sleep", "dmesg")

INIT = f"""#!/bin/sh
# netlab vm, stage 1: see netlab/vm/guest.py
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do
  insmod "/modules/$m" || echo "netlab vm: insmod $m failed" >&2
done < /modules.order
if ! mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize={MSIZE} {CTL_TAG} /ctl; then
  echo "netlab vm: cannot mount the control share" >&2
  exit 1
fi
. /ctl/boot.sh
echo "netlab vm: boot.sh returned without starting the command" >&2
exit 1
"""


@dataclass(frozen=True)
class Boot:
    """What stage 1 needs to know about this run (all host paths, already resolved)."""
    version: str
    modules: str            # the unpacked lib/modules/<version> in the cache
    modules_mountpoint: str  # where the guest expects it (/usr/lib/modules/<version> with merged /usr)
    ctl: str
    rw: tuple[tuple[str, str], ...] = ()  # (9p tag, path)
    root_cache: str = "loose"  # the 9p cache mode of the read-only root (see ROOT_CACHE)


def _9p(opts: str, tag: str, where: str) -> str:
    return f"mount -t 9p -o trans=virtio,version=9p2000.L,msize={MSIZE},{opts} {tag} {shlex.quote(where)}"


def boot_script(b: Boot) -> str:
    q = shlex.quote
    lines = [
        "# netlab vm, stage 1 continued (sourced by the initramfs's /init): see netlab/vm/guest.py",
        "set -e",
        "mkdir -p /lower /up /newroot",
        _9p(f"ro,cache={b.root_cache}", ROOT_TAG, "/lower"),
        "mount -t tmpfs -o mode=0755 tmpfs /up",
        "mkdir -p /up/upper /up/work",
        "mount -t overlay -o lowerdir=/lower,upperdir=/up/upper,workdir=/up/work overlay /newroot",
        f"mkdir -p {q('/newroot' + b.modules_mountpoint)}",
        f"mount -o bind {q('/newroot' + b.modules)} {q('/newroot' + b.modules_mountpoint)}",
        "mount -o move /dev /newroot/dev",
        "mount -o move /proc /newroot/proc",
        "mount -o move /sys /newroot/sys",
        "mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /newroot/run",
        "mkdir -p /newroot/dev/pts /newroot/dev/shm",
        "mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /newroot/dev/pts",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /newroot/dev/shm",
        "mount -t cgroup2 cgroup2 /newroot/sys/fs/cgroup || true",
        f"mkdir -p {q('/newroot' + b.ctl)}",
        f"mount -o move /ctl {q('/newroot' + b.ctl)}",
    ]
    for tag, path in b.rw:
        lines += [f"mkdir -p {q('/newroot' + path)}", _9p("cache=none", tag, "/newroot" + path)]
    lines.append(f"exec switch_root /newroot /bin/sh {q(b.ctl + '/stage2.sh')}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Command:
    argv: tuple[str, ...]   # empty: an interactive shell on the console
    cwd: str
    env: tuple[tuple[str, str], ...]
    ctl: str
    term_size: tuple[int, int] | None = None  # (rows, cols) for the interactive console
    net: bool = False  # configure QEMU's user-mode network on eth0


# QEMU's user-mode network has fixed addresses; without udev nothing loads virtio_net for us
NET_SETUP = """modprobe virtio_net
echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6
ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo 'nameserver 10.0.2.3' > /etc/resolv.conf"""


PREAMBLE = f"""#!/bin/sh
# netlab vm, stage 2 (PID 1, the host's /bin/sh): see netlab/vm/guest.py
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
dmesg -n 1 2>/dev/null
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
mkdir -p /dev/net
[ -e /dev/net/tun ] || mknod -m 0666 /dev/net/tun c 10 200
echo netlab-vm > /proc/sys/kernel/hostname
ip link set lo up
port() {{
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && echo "/dev/${{p##*/}}" && return
  done
  echo /dev/console
}}
out=$(port {OUT_PORT})
err=$(port {ERR_PORT})
"""

EPILOGUE = """sync
echo b > /proc/sysrq-trigger
"""


def stage2_script(c: Command) -> str:
    q = shlex.quote
    lines = [PREAMBLE.rstrip("\n"), f"ctl={q(c.ctl)}"]
    if c.net:
        lines.append(NET_SETUP)
    lines += [f"export {k}={q(v)}" for k, v in c.env]
    lines += [f"cd {q(c.cwd)} 2>/dev/null || cd /", "set +e"]
    if c.argv:
        lines.append(" ".join(q(a) for a in c.argv) + ' </dev/null >"$out" 2>"$err"')
    else:
        rows, cols = c.term_size or (24, 80)
        lines += [f"stty -F /dev/ttyS0 sane rows {rows} cols {cols} 2>/dev/null",
                  'echo "netlab vm: root shell on the stock kernel $(uname -r); exit (or Ctrl-D) stops the VM"'
                  ' >/dev/ttyS0',
                  "setsid -c -w /bin/bash -l <>/dev/ttyS0 >&0 2>&1"]
    lines.append('echo $? > "$ctl/rc"')
    return "\n".join(lines) + "\n" + EPILOGUE
