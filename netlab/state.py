"""The state file: what a lab created, so that teardown removes exactly that and nothing else.

``/run/netlab/<lab>/state.json`` is written *before* anything is created (write-ahead): it
lists every namespace the plan will create and carries a random ownership token. Each namespace
gets the marker ``netlab:<lab>:<token>`` as the ifalias of its ``lo`` while it is created, before
its name appears under /run/netns. Teardown deletes a namespace only if it carries that exact
marker, so a namespace of the same name that someone else made is never touched, and a crash at
any point leaves nothing that ``netlab down --all`` cannot prove is its own.

Daemons are recorded with their PID *and* their start time (field 22 of /proc/PID/stat), so a
recycled PID is never mistaken for a netlab process.
"""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import naming
from .errors import NetlabError

OWNER = "netlab"
VERSION = 1


def state_root() -> Path:
    return Path(naming.state_root())


@dataclass
class DaemonRecord:
    ns: str
    name: str
    pid: int
    start_time: int
    argv: list[str]
    log: str


_FIELDS: dict[str, type | tuple[type, ...]] = {
    "lab": str, "labfile": str, "token": str, "owner": str, "version": int, "overrides": dict,
    "namespaces": list, "daemons": list, "created_by_pid": int, "created_at": (int, float),
    "complete": bool, "created_by_start": int, "labtext": str}
_DAEMON_FIELDS = {"ns": str, "name": str, "pid": int, "start_time": int, "argv": list, "log": str}
CLAIM_PREFIX = ".claim-"


class Taken(NetlabError):
    """The instance name is held by another state directory: ``existing`` is its state (None for
    a directory that holds none), ``abandoned`` says whether the netlab that made it is gone
    without finishing, so that its leftovers may be recovered by tearing them down."""

    def __init__(self, what: str, fix: str, existing: "State | None", abandoned: bool) -> None:
        super().__init__(what, fix)
        self.existing = existing
        self.abandoned = abandoned


@dataclass
class State:
    lab: str
    labfile: str
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    owner: str = OWNER
    version: int = VERSION
    overrides: dict = field(default_factory=dict)
    namespaces: list[str] = field(default_factory=list)
    daemons: list[DaemonRecord] = field(default_factory=list)
    created_by_pid: int = field(default_factory=os.getpid)
    created_at: float = field(default_factory=time.time)
    complete: bool = False
    created_by_start: int = field(default_factory=lambda: _start_time(os.getpid()) or 0)
    # The lab file's text at up time: status, trace, bgp, bench and explain rebuild the plan of
    # what was built from it, whatever has happened to the file since.
    labtext: str = ""

    @property
    def dir(self) -> Path:
        return state_root() / naming.check_instance(self.lab)

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    def expand(self, text: str) -> str:
        """A plan path or argument with ``{run}`` made this lab's state directory."""
        return naming.expand_run(text, self.dir)

    @property
    def marker(self) -> str:
        return naming.marker(self.lab, self.token)

    def save(self) -> None:
        self._write(self.dir)

    def _write(self, d: Path) -> None:
        tmp = d / "state.json.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, d / "state.json")

    @property
    def creator_alive(self) -> bool:
        """Whether the netlab process that claimed this state still runs (PID and start time)."""
        st = _start_time(self.created_by_pid)
        return st is not None and (not self.created_by_start or st == self.created_by_start)

    def claim(self) -> None:
        """Claim the instance name atomically: the state directory is built under a temporary
        name, with ``state.json`` already in it, and then renamed into place. A crash or a signal
        at any moment leaves either no directory of that name or one whose state lists every
        namespace the plan will create, so every verb can recognise and recover it.

        Raises :class:`Taken` if the name is in use (a lab that is up, or the remains of one that a
        crashed netlab left half-built)."""
        root = state_root()
        root.mkdir(parents=True, exist_ok=True)
        _collect_stale_claims(root)
        tmp = Path(tempfile.mkdtemp(prefix=f"{CLAIM_PREFIX}{self.lab}-{os.getpid()}-", dir=root))
        try:
            os.chmod(tmp, 0o755)
            self._write(tmp)
            os.rename(tmp, self.dir)  # atomic; replaces only an *empty* directory (an old crash's)
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise self._taken() from None
            raise
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _taken(self) -> Taken:
        try:
            other = load(self.lab)
        except NoState:
            return Taken(f"lab '{self.lab}' has a state directory with no state in it ({self.dir}), left by a crash",
                         f"run 'netlab down {self.lab}' to remove it", None, True)
        except NetlabError as e:
            return Taken(str(e.what), e.fix, None, False)
        if not other.complete and not other.creator_alive:
            return Taken(f"lab '{self.lab}' was left half-built by a netlab (pid {other.created_by_pid}) that is gone",
                         f"run 'netlab down {self.lab}'", other, True)
        if not other.complete:
            return Taken(f"lab '{self.lab}' is being brought up right now by pid {other.created_by_pid}",
                         "wait for it, or pick another instance name with --name", other, False)
        return Taken(f"lab '{self.lab}' is already up (state in {self.dir})",
                     f"run 'netlab down {self.lab}' first, or pick another instance name with --name", other, False)

    def remove_dir(self) -> None:
        """Remove our state directory: only files netlab wrote live there (state, logs, configs)."""
        if self.dir.is_dir() and (self.dir / "state.json").exists():
            shutil.rmtree(self.dir)
        elif self.dir.is_dir():
            try:
                self.dir.rmdir()
            except OSError:
                pass


class NoState(NetlabError):
    """A state directory exists but holds no ``state.json`` (an older netlab's crash, or a hand edit)."""


def _start_time(pid: int) -> int | None:
    from .kernel.procs import start_time

    return start_time(pid)


def _collect_stale_claims(root: Path) -> None:
    """Remove temporary claim directories whose netlab process is gone (a SIGKILL mid-claim).
    Their names carry the claiming PID; nothing was created for them yet but the directory."""
    for d in root.glob(f"{CLAIM_PREFIX}*"):
        parts = d.name[len(CLAIM_PREFIX):].rsplit("-", 2)
        if len(parts) == 3 and parts[1].isdigit() and _start_time(int(parts[1])) is None:
            shutil.rmtree(d, ignore_errors=True)


def _checked(raw: object, path: Path) -> dict:
    """The state file's fields, type-checked: a hand-edited or damaged file is refused whole."""
    damaged = NetlabError(f"state file {path} is damaged", "inspect it; netlab will not act on it")
    if not isinstance(raw, dict) or any(k not in _FIELDS for k in raw):
        raise damaged
    for k, t in _FIELDS.items():
        if k in raw and (not isinstance(raw[k], t) or isinstance(raw[k], bool) and t is int):
            raise damaged
    if not all(isinstance(n, str) for n in raw.get("namespaces", [])):
        raise damaged
    for d in raw.get("daemons", []):
        if not isinstance(d, dict) or set(d) != set(_DAEMON_FIELDS) or any(
                not isinstance(d[k], t) for k, t in _DAEMON_FIELDS.items()):
            raise damaged
    return raw


def load(lab: str) -> State:
    """The state of instance ``lab``. The directory comes from the name asked for (checked by the
    one naming rule), and a state file whose ``lab`` field names another lab is refused: teardown
    derives every path and marker from it, so trusting it would let one lab's file remove
    another's directory."""
    d = state_root() / naming.check_instance(lab)
    path = d / "state.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        if d.is_dir():
            raise NoState(f"lab '{lab}' has a state directory with no state in it ({d}), left by a crash",
                          f"run 'netlab down {lab}' to remove it") from None
        raise NetlabError(f"lab '{lab}' is not up (no {path})", "see 'netlab list' for the labs that are up") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NetlabError(f"state file {path} is damaged", "inspect it; 'netlab down --all' skips it") from None
    except OSError as e:
        raise NetlabError(f"cannot read {path}: {e.strerror}", "check the state directory's permissions") from None
    raw = _checked(raw, path)
    if raw.get("owner") != OWNER or "token" not in raw:
        raise NetlabError(f"{path} carries no netlab ownership marker", "netlab will not touch it; remove it by hand")
    if raw.get("lab") != lab:
        raise NetlabError(f"state file {path} names lab {str(raw.get('lab'))[:40]!r}, not '{lab}'",
                          "it was edited or moved by hand; netlab will not act on it: fix or remove it by hand")
    raw["daemons"] = [DaemonRecord(**d) for d in raw.get("daemons", [])]
    return State(**raw)


def all_labs() -> list[State]:
    """Every lab with a readable state file, including those orphaned by a crash."""
    root = state_root()
    found = []
    if root.is_dir():
        for d in sorted(root.iterdir()):
            if (d / "state.json").exists():
                try:
                    found.append(load(d.name))
                except NetlabError:
                    continue
    return found


def stateless_dirs() -> list[str]:
    """Instance names whose state directory holds no state (remains of an older netlab's crash)."""
    root = state_root()
    if not root.is_dir():
        return []
    return sorted(d.name for d in root.iterdir()
                  if d.is_dir() and naming.LAB_NAME_RE.match(d.name) and not (d / "state.json").exists())


def remove_stateless(lab: str) -> bool:
    """Remove the state directory of ``lab`` if it holds no state.json. Nothing in the kernel can
    belong to it: netlab writes the state before it creates the first namespace."""
    d = state_root() / naming.check_instance(lab)
    if d.is_dir() and not (d / "state.json").exists():
        shutil.rmtree(d, ignore_errors=True)
        return True
    return False
