"""Network namespaces, in-process, the way ``ip netns`` makes them.

``ip netns add NAME`` does three things: create a file ``/run/netns/NAME``, ``unshare(CLONE_NEWNET)``
and bind-mount ``/proc/self/ns/net`` onto that file so the namespace outlives the process. netlab
does the same through libc, in the calling thread, which costs about 1 ms instead of a fork+exec.

``setns(2)`` moves only the calling *thread*; a socket stays bound to the namespace it was created
in. So :func:`entered` switches this thread in, the caller opens its netlink socket (or writes
/proc/sys), and the thread switches back. Nothing here ever configures the root namespace.

pyroute2's own ``netns.setns`` creates a namespace that does not exist (``O_CREAT`` by default),
so a typo silently makes a new one; netlab never calls it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from contextlib import contextmanager
from typing import Callable, Iterator

NETNS_RUN_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND = 4096
MS_REC = 16384
MS_SHARED = 1 << 20
MNT_DETACH = 2
UMOUNT_NOFOLLOW = 8
AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")


def path(name: str) -> str:
    return os.path.join(NETNS_RUN_DIR, name)


def exists(name: str) -> bool:
    return os.path.exists(path(name))


def names() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


def _setns_path(p: str) -> None:
    fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
    try:
        _check(_libc.setns(fd, CLONE_NEWNET), f"setns {p}")
    finally:
        os.close(fd)


@contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the body with this thread inside namespace ``name`` (which must exist)."""
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns_path(path(name))
        try:
            yield
        finally:
            _check(_libc.setns(orig, CLONE_NEWNET), "setns back to the original namespace")
    finally:
        os.close(orig)


def ensure_run_dir() -> None:
    """Make ``/run/netns`` a shared mount point before the first namespace is mounted in it,
    exactly as ``ip netns add`` does (iproute2's ``netns_add``).

    On a fresh boot ``/run/netns`` is a plain directory. If netlab mounted namespace files straight
    onto it, the next ``ip netns add`` by anyone would find no mount point there and bind the
    directory onto itself (``MS_BIND|MS_REC``), copying netlab's mounts into the new layer and
    hiding the originals under it: a later unmount takes the visible copy, the hidden original
    keeps the namespace alive, and ``unlink`` fails with EBUSY. Doing iproute2's two steps first
    (bind the directory onto itself if it is not a mount point, then mark it shared and
    recursive) leaves nothing for ``ip netns add`` to change. This is mount plumbing in the
    host's mount namespace only: no network namespace, link or sysctl is touched.

    Called once per bring-up (not per namespace: re-marking a tree of thousands of mounts
    shared costs time in proportion to its size); :func:`create` calls it too when asked."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    d = NETNS_RUN_DIR.encode()
    if _libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None) != 0:
        if ctypes.get_errno() != errno.EINVAL:  # EINVAL: not a mount point yet
            _check(-1, f"mount --make-rshared {NETNS_RUN_DIR}")
        _check(_libc.mount(d, d, b"none", MS_BIND | MS_REC, None), f"mount --rbind {NETNS_RUN_DIR} {NETNS_RUN_DIR}")
        _check(_libc.mount(b"", d, b"none", MS_SHARED | MS_REC, None), f"mount --make-rshared {NETNS_RUN_DIR}")


def create(name: str, init: Callable[[], None] | None = None, stamp: str = "", prepare: bool = True) -> None:
    """Create namespace ``name``; run ``init()`` inside it *before* it becomes visible.

    ``init`` writes the ownership marker, so a namespace file that exists under /run/netns always
    carries it: a crash can leave an unmarked namespace only in the kernel's memory, never on disk.
    The mount point file itself holds ``stamp`` (the same marker) until the namespace is mounted
    over it, so a crash between the two leaves a plain file that still says whose it is.
    Fails with FileExistsError if the name is taken (netlab never adopts someone else's namespace).
    ``prepare=False`` skips :func:`ensure_run_dir` for a caller that already ran it.
    """
    if prepare:
        ensure_run_dir()
    p = path(name)
    _create_stamped(p, stamp)
    orig = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    mounted = False
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            if init is not None:
                init()
            _check(_libc.mount(b"/proc/thread-self/ns/net", p.encode(), b"none", MS_BIND, None),
                   f"bind-mount {p}")
            mounted = True
        finally:
            _check(_libc.setns(orig, CLONE_NEWNET), "setns back to the original namespace")
    finally:
        os.close(orig)
        if not mounted:
            os.unlink(p)


def _create_stamped(p: str, stamp: str) -> None:
    """Create the mount point ``p`` already holding ``stamp``, atomically: the file is written
    unnamed (O_TMPFILE) and then linked in, which fails with EEXIST if the name is taken. A crash
    at any moment leaves either nothing or a file that says whose it is, never an empty one."""
    try:
        fd = os.open(NETNS_RUN_DIR, os.O_TMPFILE | os.O_WRONLY, 0o444)
    except OSError as e:
        if e.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)  # no O_TMPFILE here
        try:
            os.write(fd, stamp.encode())
        finally:
            os.close(fd)
        return
    try:
        os.write(fd, stamp.encode())
        # linkat(fd, "", AT_FDCWD, p, AT_EMPTY_PATH): give the unnamed file its name
        _check(_libc.linkat(fd, b"", AT_FDCWD, p.encode(), AT_EMPTY_PATH), f"link {p}")
    finally:
        os.close(fd)


def unmounted_stamp(name: str) -> str | None:
    """If ``/run/netns/name`` is a plain file (a creation that never got its namespace mounted),
    the stamp written into it; None for a real namespace or no file."""
    p = path(name)
    try:
        if os.path.ismount(p):
            return None
        with open(p) as f:
            return f.read(256)
    except OSError:
        return None


def delete(name: str) -> bool:
    """Unmount and remove ``/run/netns/name``. The kernel frees the namespace (and every link in
    it, veth peers included) once no process or socket holds it.

    The file may carry several mounts: stacked ones, or copies that another tool's recursive
    bind of ``/run/netns`` propagated. Each one is detached (MNT_DETACH) until the path is no
    longer a mount point; only then does ``unlink`` succeed. An OSError names what is left."""
    p = path(name)
    for _ in range(64):  # bounded: each round removes one mount
        if _libc.umount2(p.encode(), MNT_DETACH | UMOUNT_NOFOLLOW) != 0:
            e = ctypes.get_errno()
            if e in (errno.EINVAL, errno.ENOENT):  # no (more) mount here
                break
            raise OSError(e, f"umount {p}: {os.strerror(e)}")
    try:
        os.unlink(p)
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno == errno.EBUSY:
            raise OSError(e.errno, f"{p} is still mounted underneath a later bind mount of {NETNS_RUN_DIR} "
                                   f"(made while it was a plain directory)") from None
        raise
    return True


def setns_preexec(name: str) -> Callable[[], None]:
    """A ``preexec_fn`` that moves a child process into namespace ``name`` before exec."""
    p = path(name)

    def _enter() -> None:
        _setns_path(p)

    return _enter
