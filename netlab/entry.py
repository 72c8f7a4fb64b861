"""The ``netlab`` command's entry point: Ctrl-C and unexpected errors, handled before anything
heavy is imported.

``netlab.cli`` imports click, rich, scapy, pyroute2 and every verb, which takes about 0.15 s;
a Ctrl-C in that time used to print a traceback from deep inside an import. So the console script
and ``python -m netlab`` start here, in a module that needs only ``os`` and ``sys`` (already loaded
by the interpreter), and import the CLI inside the handlers.

Three outcomes besides the command's own exit code, each one line on stderr:

- Ctrl-C: ``netlab: interrupted — …`` and exit 130 (128 + SIGINT, as a shell reports it);
- a :class:`~netlab.errors.NetlabError` escaping the verbs: its message and its exit code;
- anything else is a netlab bug: one line naming it, exit 70 (EX_SOFTWARE), and with
  ``NETLAB_DEBUG=1`` the traceback too, so real bugs stay visible without scaring users.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing would widen the unguarded window
if TYPE_CHECKING:
    from typing import Callable, NoReturn

EXIT_INTERRUPTED = 130
EXIT_BUG = 70
NOTHING_DONE = "nothing was changed"


def _say(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # stderr closed or gone: the exit code still tells
        pass


def _ignore_sigint() -> None:
    """From here on a second Ctrl-C must not interrupt the message or the exit."""
    import signal

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except (ValueError, OSError):  # not the main thread: nothing to protect
        pass


def one_line(text: str, limit: int = 200) -> str:
    """A message for one line of stderr: control characters escaped, at most ``limit`` characters."""
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text[: limit * 4])
    return text if len(text) <= limit else text[: limit - 3] + "..."


def interrupted(what: str = NOTHING_DONE) -> NoReturn:
    _ignore_sigint()
    _say(f"netlab: interrupted — {what}")
    sys.exit(EXIT_INTERRUPTED)


def debugging() -> bool:
    return os.environ.get("NETLAB_DEBUG", "") not in ("", "0")


def caused_by_interrupt(exc: BaseException) -> bool:
    """Was this exception raised *because of* a Ctrl-C? Python wraps some exceptions on their way
    out: on 3.11 an exception inside ``__set_name__`` (a dataclass field while its class is being
    built, say during a lazy import) comes out as ``RuntimeError: Error calling __set_name__ …``
    with the KeyboardInterrupt as its ``__cause__``. That is still the user's Ctrl-C, not a bug."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        if isinstance(link, KeyboardInterrupt):
            return True
        seen.add(id(link))
        link = link.__cause__ if link.__cause__ is not None else link.__context__
    return False


def bug(exc: BaseException, interrupted_what: str = NOTHING_DONE) -> NoReturn:
    """An exception nobody expected: one line that says it is netlab's fault, exit 70.
    One that a Ctrl-C caused (see :func:`caused_by_interrupt`) ends as the interrupt it is."""
    if caused_by_interrupt(exc):
        interrupted(interrupted_what)
    _ignore_sigint()
    if debugging():
        import traceback

        traceback.print_exception(exc)
    detail = one_line(f"{type(exc).__name__}: {exc}")
    hint = "the traceback is above" if debugging() else "NETLAB_DEBUG=1 shows the traceback"
    _say(f"netlab: internal error (a netlab bug): {detail} — please report it with the command line; {hint}")
    sys.exit(EXIT_BUG)


def netlab_error(exc: Exception) -> NoReturn:
    _ignore_sigint()
    _say(f"netlab: {one_line(str(exc), 1000)}")
    sys.exit(getattr(exc, "exit_code", 1))


def fail(exc: Exception) -> NoReturn:
    """A NetlabError is the user's to fix (its own line and exit code); anything else is ours."""
    from .errors import NetlabError

    if isinstance(exc, NetlabError):
        netlab_error(exc)
    bug(exc)


def guarded(run: Callable[[], object]) -> NoReturn:
    """Run the command; whatever happens, end with one line at most and a meaningful exit code.
    After the command (SystemExit included) Ctrl-C is ignored: there is nothing left to stop,
    and an interrupt during interpreter shutdown would print a traceback of its own."""
    try:
        run()
    except KeyboardInterrupt:
        interrupted()
    except SystemExit:
        _ignore_sigint()
        raise
    except Exception as e:
        fail(e)
    _ignore_sigint()
    sys.exit(0)


def _exit_at_once(signum: int, frame: object) -> None:
    """SIGINT while the CLI's modules load. Nothing has been built yet, so there is nothing to
    roll back, and exiting right here is the only reliable answer: a KeyboardInterrupt raised
    inside an import can land in a weakref callback of the import machinery, which prints
    "Exception ignored …" with a traceback and carries on as if nothing happened."""
    try:
        os.write(2, f"netlab: interrupted — {NOTHING_DONE}\n".encode())
    finally:
        os._exit(EXIT_INTERRUPTED)


def _run_cli() -> None:
    import signal

    # Only where Python's own handler is in place: a SIGINT ignored by the parent stays ignored.
    ours = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if ours:
        signal.signal(signal.SIGINT, _exit_at_once)
    from .cli import cli  # the heavy imports (0.15 s), under _exit_at_once

    # From here on Ctrl-C is a KeyboardInterrupt again: `up` rolls back what it built on it.
    if ours:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="netlab")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass


def main() -> NoReturn:
    """The console script ``netlab`` (and ``python -m netlab``).

    An interrupted run ends with ``os._exit(130)`` once everything has unwound (``up`` has rolled
    back, every ``with`` has closed its file): if the KeyboardInterrupt was raised inside code that
    Python runs from a string (dataclasses and namedtuple build their methods that way), CPython
    remembers it as unhandled and, at exit, kills itself with SIGINT instead of exiting 130."""
    try:
        guarded(_run_cli)
    except SystemExit as e:
        if e.code == EXIT_INTERRUPTED:
            _flush()
            os._exit(EXIT_INTERRUPTED)
        raise
