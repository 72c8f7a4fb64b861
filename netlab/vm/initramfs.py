"""The initramfs: busybox-static, the boot modules and ``/init``, as an uncompressed newc cpio.

Uncompressed on purpose: under TCG, decompressing even a few MB in the guest costs more than
QEMU copying them into guest memory. Its name carries a hash of everything in it (the init
script, the module list, busybox), so a change to any of them builds a new one, and an unchanged
one is reused: building costs well under a second, but a run should not pay it.
"""

from __future__ import annotations

import hashlib
import lzma
import os
import subprocess
from pathlib import Path
from typing import Callable

from ..errors import NetlabError
from . import guest

BUSYBOX = Path("/bin/busybox")


# ---- modules.dep (pure) -------------------------------------------------------------------------

def module_name(path: str) -> str:
    """kernel/net/9p/9pnet_virtio.ko.xz -> 9pnet_virtio (dashes and underscores are one)."""
    base = path.rsplit("/", 1)[-1]
    for ext in (".xz", ".zst", ".gz"):
        base = base.removesuffix(ext)
    return base.removesuffix(".ko").replace("-", "_")


def parse_modules_dep(text: str) -> dict[str, tuple[str, list[str]]]:
    """name -> (path, [dependency paths]) from depmod's modules.dep."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, deps = line.split(":", 1)
        out[module_name(path)] = (path, deps.split())
    return out


def load_order(wanted: tuple[str, ...], dep: dict[str, tuple[str, list[str]]], builtin: set[str]) -> list[str]:
    """Module paths to insmod, dependencies first, each once. A wanted module that is built in
    needs nothing; one that is neither built in nor in modules.dep is an error."""
    order: list[str] = []

    def visit(name: str) -> None:
        path, deps = dep[name]
        for d in deps:
            visit(module_name(d))
        if path not in order:
            order.append(path)

    for name in wanted:
        name = name.replace("-", "_")
        if name in builtin:
            continue
        if name not in dep:
            raise NetlabError(f"the stock kernel has no module '{name}', which netlab vm needs to boot",
                              "rerun 'netlab vm prepare --force'")
        visit(name)
    return order


# ---- cpio newc (pure) ---------------------------------------------------------------------------

S_IFDIR, S_IFREG, S_IFLNK, S_IFCHR = 0o040000, 0o100000, 0o120000, 0o020000


def _entry(ino: int, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> bytes:
    nameb = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(nameb), 0)
    head = b"070701" + b"".join(b"%08X" % f for f in fields) + nameb
    head += b"\0" * (-len(head) % 4)
    return head + data + b"\0" * (-len(data) % 4)


def cpio(entries: list[tuple[str, int, bytes, tuple[int, int]]]) -> bytes:
    """A newc archive of (name, mode, data, (rdev major, minor)); a symlink's data is its target."""
    out = [_entry(i + 1, name, mode, data, rdev) for i, (name, mode, data, rdev) in enumerate(entries)]
    out.append(_entry(0, "TRAILER!!!", 0))
    blob = b"".join(out)
    return blob + b"\0" * (-len(blob) % 512)


# ---- building ----------------------------------------------------------------------------------

def _module_bytes(path: Path) -> bytes:
    """busybox insmod takes plain ELF only: compressed modules are unpacked here."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".zst"):
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def _static_busybox() -> bytes:
    if not BUSYBOX.exists():
        raise NetlabError("/bin/busybox is missing, and the VM's initramfs is built from it",
                          "apt-get install busybox-static (or run ./setup.sh)")
    data = BUSYBOX.read_bytes()
    if b"/lib64/ld-linux" in data[:4096] or b"/lib/ld-linux" in data[:4096]:
        raise NetlabError("/bin/busybox is dynamically linked and cannot run alone in an initramfs",
                          "apt-get install busybox-static")
    return data


def contents(kernel) -> tuple[list[tuple[str, int, bytes, tuple[int, int]]], str]:
    mods = kernel.modules
    dep = parse_modules_dep((mods / "modules.dep").read_text())
    builtin_file = mods / "modules.builtin"
    builtin = {module_name(m) for m in builtin_file.read_text().split()} if builtin_file.exists() else set()
    order = load_order(guest.BOOT_MODULES, dep, builtin)
    entries: list[tuple[str, int, bytes, tuple[int, int]]] = [
        (d, S_IFDIR | 0o755, b"", (0, 0)) for d in ("bin", "dev", "proc", "sys", "ctl", "modules")]
    entries.append(("dev/console", S_IFCHR | 0o600, b"", (5, 1)))
    entries.append(("bin/busybox", S_IFREG | 0o755, _static_busybox(), (0, 0)))
    entries += [(f"bin/{a}", S_IFLNK | 0o777, b"busybox", (0, 0)) for a in guest.APPLETS]
    files = []
    for p in order:
        data = _module_bytes(mods / p)
        fname = module_name(p) + ".ko"
        files.append(fname)
        entries.append((f"modules/{fname}", S_IFREG | 0o644, data, (0, 0)))
    entries.append(("modules.order", S_IFREG | 0o644, ("\n".join(files) + "\n").encode(), (0, 0)))
    entries.append(("init", S_IFREG | 0o755, guest.INIT.encode(), (0, 0)))
    digest = hashlib.sha256()
    for name, mode, data, rdev in entries:
        digest.update(f"{name}\0{mode}\0{rdev}\0".encode() + hashlib.sha256(data).digest())
    return entries, digest.hexdigest()[:12]


def ensure(kernel, log: Callable[[str], None]) -> Path:
    """The initramfs for this kernel and this netlab, built if it is not in the cache yet."""
    entries, digest = contents(kernel)
    path = kernel.dir / f"initramfs-{digest}.cpio"
    if path.exists():
        return path
    log(f"building the initramfs ({len([e for e in entries if e[0].startswith('modules/')])} modules, busybox)")
    for old in kernel.dir.glob("initramfs-*.cpio"):
        old.unlink()
    tmp = path.with_suffix(f".tmp{os.getpid()}")  # two first runs at once each write their own
    tmp.write_bytes(cpio(entries))
    os.replace(tmp, path)
    return path
