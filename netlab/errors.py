"""One error type for everything a user can get wrong.

Every message has two halves, printed as ``netlab: <what is wrong> — <what to do>``,
in the style of ipspace netlab: the user should never need a traceback to know the fix.
"""

from __future__ import annotations


class NetlabError(Exception):
    """A problem the user can fix; ``fix`` says how."""

    exit_code = 1

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.what} — {self.fix}" if self.fix else self.what


class LabFileError(NetlabError):
    """The lab file (or an override) is invalid. Always names the file and the field."""

    exit_code = 2


class KernelFeatureError(NetlabError):
    """The running kernel lacks something the datapath needs (probed, never assumed)."""

    exit_code = 3


class ApplyError(NetlabError):
    """The kernel refused part of the plan; the lab was rolled back.

    ``obj`` is the plan object the kernel refused and ``errno`` its answer, so that a datapath
    can explain a refusal that is the point of a lab (host-gw across racks)."""

    exit_code = 4

    def __init__(self, what: str, fix: str = "", obj: object = None, errno: int | None = None) -> None:
        super().__init__(what, fix)
        self.obj = obj
        self.errno = errno
