"""The stock kernel: found, fetched and unpacked with the system's package manager, then cached.

``prepare`` asks apt which versioned image package the distribution's meta package depends on
(``linux-image-amd64`` on Debian, ``linux-image-generic`` on Ubuntu, whose modules come in
separate ``linux-modules-*`` packages), downloads it with ``apt-get download`` (no installation:
the host's /boot and /lib/modules are never touched), unpacks it with ``dpkg-deb -x`` into the
cache, extracts the ELF ``vmlinux`` from the compressed ``vmlinuz`` (the bzImage setup header
says where the compressed payload is), runs kmod's ``depmod`` over the unpacked modules (without
its index, ``modprobe`` in the guest finds nothing) and builds the initramfs.

The cache (``$NETLAB_VM_CACHE``, default /var/cache/netlab/vm) holds one directory per kernel
version and a ``current`` symlink; a prepared version is marked by a ``READY`` file written last,
so an interrupted prepare is redone, and a second prepare only asks apt which version is current.
"""

from __future__ import annotations

import fcntl
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..errors import NetlabError

ENV = "NETLAB_VM_CACHE"
DEFAULT_CACHE = "/var/cache/netlab/vm"
Log = Callable[[str], None]


def _log(msg: str) -> None:
    print(f"netlab vm: {msg}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Kernel:
    version: str      # e.g. 6.1.0-57-amd64, the name of its /lib/modules directory
    dir: Path         # <cache>/<version>

    @property
    def root(self) -> Path:
        """Where the packages were unpacked (boot/, lib/modules/<version>/)."""
        return self.dir / "root"

    @property
    def vmlinux(self) -> Path:
        return self.dir / "vmlinux"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.version

    @property
    def ready(self) -> bool:
        return (self.dir / "READY").exists()

    def config(self) -> dict[str, str]:
        """The kernel's build configuration (CONFIG_X -> y/m/value), from its boot/config-*."""
        out = {}
        path = self.root / "boot" / f"config-{self.version}"
        for line in path.read_text().splitlines() if path.exists() else []:
            if line.startswith("CONFIG_") and "=" in line:
                k, v = line.split("=", 1)
                out[k] = v
        return out


def cache_dir() -> Path:
    return Path(os.environ.get(ENV) or DEFAULT_CACHE)


# ---- which packages (pure) ----------------------------------------------------------------------

def meta_package(os_id: str, arch: str) -> str:
    """The package that always depends on the distribution's current stock kernel image."""
    if os_id == "ubuntu":
        return "linux-image-generic"
    return f"linux-image-{arch}"


def parse_depends(text: str, prefix: str) -> list[str]:
    """Package names from ``apt-cache depends`` output (``Depends:``/``Recommends:`` lines,
    alternatives marked ``|`` included) that start with ``prefix``, in order, without repeats."""
    out: list[str] = []
    for line in text.splitlines():
        m = re.match(r"\s*\|?(?:Depends|Recommends|PreDepends):\s*<?([^\s>]+)>?", line)
        if m and m.group(1).startswith(prefix) and m.group(1) not in out:
            out.append(m.group(1))
    return out


def version_of(image_pkg: str) -> str:
    """linux-image-6.1.0-57-amd64 -> 6.1.0-57-amd64 (also -unsigned- images)."""
    v = image_pkg.removeprefix("linux-image-")
    return v.removeprefix("unsigned-")


def packages_for(version: str, image_pkg: str, available: set[str]) -> list[str]:
    """The image package plus the module packages the distribution splits out (Ubuntu)."""
    pkgs = [image_pkg]
    pkgs += [p for p in (f"linux-modules-{version}", f"linux-modules-extra-{version}") if p in available]
    return pkgs


def os_release_id(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("ID="):
            return line.split("=", 1)[1].strip().strip('"')
    return ""


# ---- vmlinuz -> vmlinux (pure) ------------------------------------------------------------------

def extract_vmlinux(bzimage: bytes) -> bytes:
    """The ELF kernel inside a bzImage. The setup header (Documentation/x86/boot.rst) gives the
    number of setup sectors (0x1f1) and the compressed payload's offset and length within the
    protected-mode part (0x248, 0x24c); the payload's magic names its compression. The build
    appends the uncompressed size after the stream: the decompressors below stop at the stream's
    end and leave it unread."""
    if len(bzimage) < 0x250 or bzimage[0x202:0x206] != b"HdrS":
        raise NetlabError("the kernel image is not a bzImage (no HdrS setup header)",
                          "netlab vm needs an x86 distribution kernel; rerun 'netlab vm prepare --force'")
    setup_sects = bzimage[0x1F1] or 4
    offset, length = struct.unpack_from("<II", bzimage, 0x248)
    start = (setup_sects + 1) * 512 + offset
    payload = bzimage[start:start + length]
    if payload.startswith(b"\xfd7zXZ\x00"):
        elf = lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(payload)
    elif payload.startswith(b"\x1f\x8b"):
        elf = zlib.decompressobj(wbits=31).decompress(payload)
    elif payload.startswith(b"\x28\xb5\x2f\xfd"):
        elf = _zstd(payload)
    else:
        raise NetlabError(f"the kernel payload's compression is not xz, gzip or zstd (magic {payload[:4].hex()})",
                          "use a kernel compressed with one of those")
    if not elf.startswith(b"\x7fELF"):
        raise NetlabError("the decompressed kernel is not an ELF vmlinux", "rerun 'netlab vm prepare --force'")
    return elf


def _zstd(payload: bytes) -> bytes:
    r = subprocess.run(["zstd", "-dc"], input=payload[:-4], capture_output=True)
    if r.returncode != 0:
        raise NetlabError("zstd could not decompress the kernel", "apt-get install zstd")
    return r.stdout


# ---- the cache ----------------------------------------------------------------------------------

@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One prepare at a time per cache (two CI jobs may start at once)."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def current(cache: Path | None = None) -> Kernel | None:
    """The prepared kernel the ``current`` symlink names, or None."""
    cache = cache or cache_dir()
    link = cache / "current"
    if not link.is_symlink():
        return None
    k = Kernel(os.readlink(link), cache / os.readlink(link))
    return k if k.ready else None


def _run(argv: list[str], what: str, fix: str, cwd: Path | None = None) -> str:
    try:
        r = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise NetlabError(f"'{argv[0]}' is not installed, and {what} needs it", fix) from None
    if r.returncode != 0:
        last = (r.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise NetlabError(f"{what} failed: {' '.join(argv[:3])}…: {last}", fix)
    return r.stdout


def resolve() -> tuple[str, list[str]]:
    """(version, packages) of the distribution's current stock kernel, asked of apt."""
    osr = Path("/etc/os-release")
    os_id = os_release_id(osr.read_text()) if osr.exists() else ""
    arch = _run(["dpkg", "--print-architecture"], "finding the architecture", "netlab vm needs a Debian or Ubuntu host").strip()
    meta = meta_package(os_id, arch)
    fix = f"run 'apt-get update' (netlab vm asks apt for {meta})"
    deps = parse_depends(_run(["apt-cache", "depends", meta], f"asking apt what {meta} depends on", fix), "linux-image-")
    if not deps:
        raise NetlabError(f"apt knows no versioned kernel image that {meta} depends on", fix)
    image = deps[0]
    version = version_of(image)
    names = {f"linux-modules-{version}", f"linux-modules-extra-{version}"}
    listed = _run(["apt-cache", "pkgnames", "linux-modules-"], "listing module packages", fix) if os_id == "ubuntu" else ""
    return version, packages_for(version, image, names & set(listed.split()))


def prepare(force: bool = False, log: Log = _log) -> Kernel:
    """Fetch, unpack and index the stock kernel and build its initramfs; idempotent."""
    cache = cache_dir()
    with _locked(cache):
        version, packages = resolve()
        k = Kernel(version, cache / version)
        if k.ready and not force:
            _point_current(cache, version)
            from . import initramfs
            initramfs.ensure(k, log)
            return k
        _fetch_and_unpack(k, packages, log)
        log(f"extracting vmlinux from vmlinuz-{version}")
        vmlinuz = k.root / "boot" / f"vmlinuz-{version}"
        k.vmlinux.write_bytes(extract_vmlinux(vmlinuz.read_bytes()))
        vmlinuz.unlink()
        log("indexing modules with depmod")
        _run(["depmod", "-b", str(k.root), version], "depmod", "apt-get install kmod")
        from . import initramfs
        initramfs.ensure(k, log)
        (k.dir / "kernel.json").write_text(json.dumps({"version": version, "packages": packages}) + "\n")
        (k.dir / "READY").write_text("")
        _point_current(cache, version)
        log(f"kernel {version} ready in {k.dir}")
        return k


def _fetch_and_unpack(k: Kernel, packages: list[str], log: Log) -> None:
    if k.dir.exists():
        shutil.rmtree(k.dir)
    dl = k.dir / "download"
    dl.mkdir(parents=True)
    log(f"downloading {', '.join(packages)} with apt-get download")
    # as root, apt would hand the download to the _apt user, who cannot write into the cache
    _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", *packages], "apt-get download",
         "run 'apt-get update', or check that apt can reach the archive", cwd=dl)
    for deb in sorted(dl.glob("*.deb")):
        log(f"unpacking {deb.name}")
        _run(["dpkg-deb", "-x", str(deb), str(k.root)], "dpkg-deb -x", "apt-get install dpkg")
    shutil.rmtree(dl)
    if not k.modules.is_dir():
        raise NetlabError(f"the packages hold no lib/modules/{k.version}", "rerun 'netlab vm prepare --force'")


def _point_current(cache: Path, version: str) -> None:
    tmp = cache / ".current.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(version)
    os.replace(tmp, cache / "current")


def ensure_prepared(log: Log = _log) -> Kernel:
    """The current kernel, preparing it first if there is none (run and shell call this)."""
    k = current()
    if k is not None:
        from . import initramfs
        initramfs.ensure(k, log)
        return k
    log(f"no stock kernel in {cache_dir()} yet: preparing one (once)")
    return prepare(log=log)
