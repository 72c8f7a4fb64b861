"""Boot the stock kernel in QEMU, run one command (or a shell) in it, and return its exit code.

Per run, a control directory on the host (``mkdtemp``) is shared writable with the guest. netlab
writes the guest's stage-1 and stage-2 scripts into it (see :mod:`.guest`); the guest writes the
command's exit status (``rc``) back, and its kernel console goes to ``console.log`` beside it,
which is shown when a boot fails. The directory is removed after the run.

stdout and stderr come back separately and as they are written: QEMU writes the two virtio
serial ports into pipes that this process drains while the VM runs.
"""

from __future__ import annotations

import dataclasses
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import NetlabError
from . import accel as accel_mod
from . import guest, initramfs, kernel, qemu

QEMU = "qemu-system-x86_64"
# variables that describe the caller's session, not what the command needs; the guest has none of it
DROP_ENV = {"PWD", "OLDPWD", "SHLVL", "_", "DISPLAY", "WAYLAND_DISPLAY", "XDG_RUNTIME_DIR", "DBUS_SESSION_BUS_ADDRESS",
            "SSH_AUTH_SOCK", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "TMUX", "TMUX_PANE", "STY", "PS1", "PS2",
            "PROMPT_COMMAND", "MAIL", "LS_COLORS", "PYTEST_CURRENT_TEST"}


class VmTimeout(NetlabError):
    exit_code = 124  # as timeout(1)


@dataclass(frozen=True)
class Options:
    mem_mb: int = 2048
    timeout: float | None = None
    rw: tuple[str, ...] = ()
    cpus: int = 0  # 0: min(2, this machine's CPUs)
    verbose: bool = False
    net: bool = False


def guest_env(environ: dict[str, str], python_bin: str) -> list[tuple[str, str]]:
    """The caller's environment for the command, session variables dropped and the running
    interpreter's directory first on PATH: ``netlab vm run -- netlab …`` then runs the same
    netlab from the same virtualenv, through its interpreter and not a shim (a pyenv shim costs
    seconds under TCG)."""
    env = {k: v for k, v in environ.items()
           if k not in DROP_ENV and k.isidentifier() and "\n" not in v and not k.startswith("BASH_FUNC_")}
    path = [p for p in env.get("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin").split(":") if p]
    for p in ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        if p not in path:
            path.append(p)
    env["PATH"] = ":".join([python_bin] + [p for p in path if p != python_bin])
    env.update(NETLAB_IN_VM="1", HOME="/root")
    return sorted(env.items())


def check_rw(paths: tuple[str, ...]) -> tuple[str, ...]:
    out = []
    for p in paths:
        rp = os.path.realpath(p)
        if not os.path.isdir(rp):
            raise NetlabError(f"--rw {p}: not a directory", "create it first, or name an existing directory")
        if rp == "/":
            raise NetlabError("--rw /: the host's root is shared read-only on purpose",
                              "share the one directory the VM must write to")
        out.append(rp)
    return tuple(out)


def _modules_mountpoint(version: str) -> str:
    """/lib/modules/<v> as the host resolves it (with merged /usr: /usr/lib/modules/<v>)."""
    return str(Path("/lib/modules").resolve() / version)


def _write_scripts(ctl: Path, k: kernel.Kernel, argv: tuple[str, ...], rw: tuple[str, ...], net: bool) -> None:
    boot = guest.Boot(version=k.version, modules=str(k.modules.resolve()),
                      modules_mountpoint=_modules_mountpoint(k.version), ctl=str(ctl),
                      rw=tuple((f"netlabrw{i}", p) for i, p in enumerate(rw)),
                      root_cache=os.environ.get("NETLAB_VM_9P_CACHE") or guest.ROOT_CACHE)
    size = shutil.get_terminal_size((80, 24))
    cmd = guest.Command(argv=argv, cwd=os.getcwd(), env=tuple(guest_env(dict(os.environ), os.path.dirname(sys.executable))),
                        ctl=str(ctl), term_size=(size.lines, size.columns), net=net)
    (ctl / "boot.sh").write_text(guest.boot_script(boot))
    (ctl / "stage2.sh").write_text(guest.stage2_script(cmd))


def _spec(k: kernel.Kernel, initrd: Path, ctl: Path, opts: Options, accel: str,
          ports: tuple[qemu.Port, ...], interactive: bool) -> qemu.Spec:
    shares = [qemu.Share(qemu.ROOT_TAG, "/", readonly=True), qemu.Share(qemu.CTL_TAG, str(ctl))]
    shares += [qemu.Share(f"netlabrw{i}", p) for i, p in enumerate(opts.rw)]
    return qemu.Spec(kernel=str(k.vmlinux), initrd=str(initrd), cmdline=qemu.kernel_cmdline(quiet=not opts.verbose),
                     accel=accel, mem_mb=opts.mem_mb, cpus=opts.cpus or min(2, os.cpu_count() or 1),
                     shares=tuple(shares), ports=ports, console=None if interactive else str(ctl / "console.log"),
                     binary=QEMU, net=opts.net)


def _pump(proc: subprocess.Popen, fds: dict[int, BinaryIO | None], deadline: float | None) -> bool:
    """Copy the ports' pipes to their sinks until QEMU closes them; False if time ran out."""
    sel = selectors.DefaultSelector()
    for fd in fds:
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(fds)
    while open_fds:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            return False
        for key, _ in sel.select(timeout=wait):
            data = os.read(key.fd, 65536)
            if not data:
                sel.unregister(key.fd)
                open_fds.discard(key.fd)
                continue
            sink = fds[key.fd]
            if sink is None:
                continue
            try:
                sink.write(data)
                sink.flush()
            except BrokenPipeError:  # e.g. `netlab vm run -- … | head`: keep draining, stop writing
                fds[key.fd] = None
    wait = None if deadline is None else max(0.0, deadline - time.monotonic())
    try:
        proc.wait(timeout=wait)
    except subprocess.TimeoutExpired:
        return False
    return True


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _result(ctl: Path, proc: subprocess.Popen) -> int:
    rc_file = ctl / "rc"
    if rc_file.exists() and rc_file.read_text().strip().isdigit():
        return int(rc_file.read_text().strip())
    qlog = (ctl / "qemu.log").read_text(errors="replace").strip() if (ctl / "qemu.log").exists() else ""
    if proc.returncode not in (0, None):  # QEMU's own failure (its message is above when interactive)
        raise NetlabError(f"QEMU failed (exit {proc.returncode}){': ' + qlog.splitlines()[-1] if qlog else ''}",
                          f"check that {QEMU} works here: apt-get install qemu-system-x86 (or run ./setup.sh)")
    con = (ctl / "console.log").read_text(errors="replace").splitlines() if (ctl / "console.log").exists() else []
    for line in con[-15:]:
        print(f"netlab vm: console: {line}", file=sys.stderr)
    raise NetlabError("the VM stopped before the command finished (boot failure or kernel panic; console above)",
                      "rerun with --verbose for the kernel's messages, or 'netlab vm prepare --force'")


def _require_qemu() -> None:
    if shutil.which(QEMU) is None:
        raise NetlabError(f"'{QEMU}' is not installed, and netlab vm boots its kernel with it",
                          "apt-get install qemu-system-x86 (or run ./setup.sh)")


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NetlabError("netlab vm needs root (it shares the host's / with the VM and runs the command as root)",
                          "run it as root: sudo netlab vm …")


def _die_with_parent() -> None:
    """In QEMU's child before exec: the kernel sends it SIGKILL when this runner dies, however it
    dies (SIGKILL included, where no finally clause runs), so a VM never outlives its run."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _terminated(signum: int, frame: object) -> None:
    """SIGTERM (a CI job's timeout, timeout(1)) unwinds like an exception, so that the finally
    clauses stop QEMU and remove the control directory."""
    raise SystemExit(128 + signum)


def _boot(argv: tuple[str, ...], opts: Options, stdout: BinaryIO, stderr: BinaryIO) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    _require_root()
    _require_qemu()
    k = kernel.ensure_prepared()
    initrd = initramfs.ensure(k, kernel._log)
    acc = accel_mod.detect()
    if opts.verbose:
        print(f"netlab vm: {k.version}, accel {acc.name} ({acc.reason})", file=sys.stderr)
    interactive = not argv
    ctl = Path(tempfile.mkdtemp(prefix="netlab-vm-"))
    pipes: list[tuple[int, int]] = [] if interactive else [os.pipe(), os.pipe()]
    try:
        _write_scripts(ctl, k, argv, opts.rw, opts.net)
        names = (guest.OUT_PORT, guest.ERR_PORT)[:len(pipes)]  # none for the interactive shell
        ports = tuple(qemu.Port(name, w) for name, (_, w) in zip(names, pipes, strict=True))
        cmd = qemu.argv(_spec(k, initrd, ctl, opts, acc.name, ports, interactive))
        with open(ctl / "qemu.log", "wb") as qlog:
            proc = subprocess.Popen(cmd, stdin=None if interactive else subprocess.DEVNULL,
                                    stdout=None if interactive else subprocess.DEVNULL,
                                    stderr=None if interactive else qlog, pass_fds=[w for _, w in pipes],
                                    preexec_fn=_die_with_parent)
        for _, w in pipes:
            os.close(w)
        deadline = None if opts.timeout is None else time.monotonic() + opts.timeout
        try:
            sinks: dict[int, BinaryIO | None] = {r: s for (r, _), s in zip(pipes, (stdout, stderr)[:len(pipes)], strict=True)}
            finished = _pump(proc, sinks, deadline)
        finally:
            _stop(proc)
        if not finished:
            raise VmTimeout(f"the VM command did not finish within {opts.timeout:g} s (the VM was stopped)",
                            "raise --timeout, or make the command shorter")
        return _result(ctl, proc)
    finally:
        for r, _ in pipes:
            os.close(r)
        shutil.rmtree(ctl, ignore_errors=True)


def run(argv: list[str] | tuple[str, ...], opts: Options = Options(), stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None) -> int:
    """Run ``argv`` as root in a fresh VM on the stock kernel; its exit code."""
    if not argv:
        raise NetlabError("no command given", "say what to run: netlab vm run -- CMD …")
    opts = dataclasses.replace(opts, rw=check_rw(opts.rw))
    return _boot(tuple(argv), opts, stdout or sys.stdout.buffer, stderr or sys.stderr.buffer)


def shell(opts: Options = Options()) -> int:
    """An interactive root shell in the same kind of VM; the shell's exit code."""
    opts = dataclasses.replace(opts, timeout=None, rw=check_rw(opts.rw))
    return _boot((), opts, sys.stdout.buffer, sys.stderr.buffer)
