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

import json
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import naming
from .errors import NetlabError

OWNER = "netlab"
VERSION = 1


def state_root() -> Path:
    return Path(os.environ.get("NETLAB_STATE_DIR", naming.STATE_DIR))


@dataclass
class DaemonRecord:
    ns: str
    name: str
    pid: int
    start_time: int
    argv: list[str]
    log: str


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

    @property
    def dir(self) -> Path:
        return state_root() / self.lab

    @property
    def path(self) -> Path:
        return self.dir / "state.json"

    @property
    def marker(self) -> str:
        return naming.marker(self.lab, self.token)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.path)

    def claim(self) -> None:
        """Create the state directory; fails if the lab is already up (or left over)."""
        state_root().mkdir(parents=True, exist_ok=True)
        try:
            self.dir.mkdir()
        except FileExistsError:
            raise NetlabError(f"lab '{self.lab}' is already up (state in {self.dir})",
                              f"run 'netlab down {self.lab}' first, or pick another instance name with --name") from None
        self.save()

    def remove_dir(self) -> None:
        """Remove our state directory: only files netlab wrote live there (state, logs, configs)."""
        if self.dir.is_dir() and (self.dir / "state.json").exists():
            shutil.rmtree(self.dir)
        elif self.dir.is_dir():
            try:
                self.dir.rmdir()
            except OSError:
                pass


def load(lab: str) -> State:
    path = state_root() / lab / "state.json"
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise NetlabError(f"lab '{lab}' is not up (no {path})", "see 'netlab status' for the labs that are up") from None
    except json.JSONDecodeError:
        raise NetlabError(f"state file {path} is damaged", "inspect it; 'netlab down --all' skips it") from None
    if raw.get("owner") != OWNER or "token" not in raw:
        raise NetlabError(f"{path} carries no netlab ownership marker", "netlab will not touch it; remove it by hand")
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
