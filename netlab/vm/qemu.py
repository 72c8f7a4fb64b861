"""QEMU's argument vector, built from plain data (pure: unit-tested without QEMU).

Choices, and why:

- ``-kernel vmlinux`` (the uncompressed ELF, not ``vmlinuz``): QEMU finds its PVH entry note
  (XEN_ELFNOTE_PHYS32_ENTRY) and jumps straight into 32-bit protected mode. Under TCG that saves
  the real-mode setup code and decompressing ~60 MB inside the emulator.
- ``-cpu max``: the default ``qemu64`` model lacks SSE4/AVX, and numpy (pulled in by matplotlib
  and scapy users) dies with SIGILL on it.
- ``-nodefaults`` and no ``-netdev``: the guest has no network of the host's; labs build their
  own inside the guest, exactly as on the host. Only ``net=True`` (``netlab vm run --net``, for
  a command that needs to reach the network, such as pip) adds QEMU's user-mode network: the guest's packets become the
  QEMU process's own sockets on the host, so nothing in the host's network configuration changes.
- 9p (``virtio-9p-pci``) shares the host's ``/`` read-only (``readonly=on``) and each writable
  directory by the same path; ``multidevs=remap`` keeps inode numbers unique across the host's
  mount points, which the guest's overlayfs relies on.
- The command's stdout and stderr travel over two ``virtserialport``s whose chardevs write to
  file descriptors netlab passed to QEMU (``/proc/self/fd/N``): byte-exact, no tty ``\\r\\n``,
  and separate from the kernel's console on ttyS0.
- ``-no-reboot`` with ``panic=-1``: a guest that reboots (the end of every run) or panics makes
  QEMU exit instead of booting again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROOT_TAG = "netlabroot"
CTL_TAG = "netlabctl"


@dataclass(frozen=True)
class Share:
    tag: str
    path: str
    readonly: bool = False


@dataclass(frozen=True)
class Port:
    name: str  # the guest sees it in /sys/class/virtio-ports/*/name
    fd: int    # the host file descriptor QEMU writes to


@dataclass(frozen=True)
class Spec:
    kernel: str
    initrd: str
    cmdline: str
    accel: str = "tcg"
    mem_mb: int = 2048
    cpus: int = 2
    shares: tuple[Share, ...] = ()
    ports: tuple[Port, ...] = ()
    console: str | None = None  # a file for ttyS0; None: ttyS0 (and QEMU's monitor) on stdio
    net: bool = False  # user-mode networking (slirp): guest 10.0.2.15, gateway 10.0.2.2, DNS 10.0.2.3
    binary: str = "qemu-system-x86_64"
    extra: tuple[str, ...] = field(default=())


def kernel_cmdline(quiet: bool = True) -> str:
    """The guest kernel's command line: serial console, no time spent on what a throw-away VM
    never needs (mitigations, the TSC calibration check, more than one UART)."""
    args = ["console=ttyS0", "panic=-1", "rdinit=/init", "mitigations=off", "no_timer_check",
            "tsc=reliable", "8250.nr_uarts=1", "random.trust_cpu=on", "net.ifnames=0"]
    if quiet:
        args += ["quiet", "loglevel=3"]
    return " ".join(args)


def _opt(value: str) -> str:
    """A value inside a QEMU -option list: commas are doubled."""
    return value.replace(",", ",,")


def share_args(s: Share, index: int) -> list[str]:
    fsdev = f"local,id=fs{index},path={_opt(s.path)},security_model=none,multidevs=remap"
    if s.readonly:
        fsdev += ",readonly=on"
    return ["-fsdev", fsdev, "-device", f"virtio-9p-pci,fsdev=fs{index},mount_tag={s.tag}"]


def port_args(ports: tuple[Port, ...]) -> list[str]:
    if not ports:
        return []
    argv = ["-device", "virtio-serial-pci,id=vser0"]
    for i, p in enumerate(ports):
        argv += ["-chardev", f"file,id=port{i},path=/proc/self/fd/{p.fd},append=on",
                 "-device", f"virtserialport,bus=vser0.0,nr={i + 1},chardev=port{i},name={p.name}"]
    return argv


def console_args(console: str | None) -> list[str]:
    if console is None:  # interactive: ttyS0 and the monitor multiplexed on stdio (Ctrl-A X quits)
        return ["-chardev", "stdio,id=con,mux=on,signal=off", "-serial", "chardev:con", "-mon", "chardev=con"]
    return ["-serial", f"file:{console}"]


def argv(spec: Spec) -> list[str]:
    accel = "kvm" if spec.accel == "kvm" else "tcg,thread=multi"
    out = [spec.binary, "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
           "-machine", "pc", "-accel", accel, "-cpu", "max", "-smp", str(spec.cpus), "-m", str(spec.mem_mb),
           "-kernel", spec.kernel, "-initrd", spec.initrd, "-append", spec.cmdline]
    for i, s in enumerate(spec.shares):
        out += share_args(s, i)
    out += port_args(spec.ports)
    if spec.net:
        # IPv4 only: slirp's IPv6 router advertisements would give the guest's root namespace
        # routes whose lifetimes count down, which no before/after comparison can hold still
        out += ["-netdev", "user,id=net0,ipv6=off", "-device", "virtio-net-pci,netdev=net0"]
    out += console_args(spec.console)
    return out + list(spec.extra)
