"""``netlab bench [lab ...]``: iperf3 pod to pod across nodes, against baselines and published claims."""

from __future__ import annotations

import json
import os
import stat
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ..bench import report
from ..errors import NetlabError
from ..model import shown, shown_path
from ..bench.runner import Reporter, Settings, run


class RichReporter(Reporter):
    """A progress bar on stderr: what is running now, runs done, and an estimate of the time left
    (from the runs so far, so it corrects itself when the machine is slower than expected)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("[cyan]~{task.fields[left]} left"),
                                 console=console, transient=True)
        self.task: TaskID | None = None  # set by begin
        self.total = 0
        self.done = 0
        self.spent = 0.0
        self.expected = 0.0

    def begin(self, total: int, seconds: float) -> None:
        self.total, self.expected = total, seconds
        self.progress.start()
        self.task = self.progress.add_task("measuring", total=total, left=self._left())

    def _left(self) -> str:
        if self.done:
            per = self.spent / self.done
        else:
            per = self.expected / max(self.total, 1)
        s = int(per * (self.total - self.done))
        return f"{s // 60}m{s % 60:02d}s"

    def step(self, what: str) -> None:
        if self.task is None:
            self.console.print(f"[dim]  {what}[/dim]")
        else:
            self.progress.update(self.task, description=what)

    def advance(self, seconds: float) -> None:
        self.done += 1
        self.spent += seconds
        if self.task is not None:
            self.progress.update(self.task, advance=1, left=self._left())

    def log(self, msg: str) -> None:
        self.console.print(f"[yellow]  {msg}[/yellow]")

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


MAX_DOCUMENT = 256 << 20  # a --json document of a long run is a few MB; refuse what cannot be one


_SHAPE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)


def _not_a_document(name: str, e: Exception) -> NetlabError:
    return NetlabError(f"--from-json {name}: is not a netlab bench document ({type(e).__name__}: {shown(str(e), 60)})",
                       FROM_JSON_FIX)


FROM_JSON_FIX = "give the file 'netlab bench --json' wrote"


def _read_text(path: str, name: str) -> str:
    """The file's text; a FIFO or a device is refused before it is opened (opening a FIFO
    would wait for a writer forever), and at most MAX_DOCUMENT bytes are read."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
            raise NetlabError(f"--from-json {name}: is {kind}", FROM_JSON_FIX)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as f:
            data = f.read(MAX_DOCUMENT + 1)
    except OSError as e:
        raise NetlabError(f"--from-json {name}: cannot be read ({e.strerror or type(e).__name__})",
                          FROM_JSON_FIX) from None
    if len(data) > MAX_DOCUMENT:
        raise NetlabError(f"--from-json {name}: is larger than {MAX_DOCUMENT >> 20} MiB", FROM_JSON_FIX)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise NetlabError(f"--from-json {name}: is not UTF-8 text", FROM_JSON_FIX) from None


def read_document(path: str) -> "tuple[report.Outcome, dict | None]":
    """A saved ``--json`` run and the host it was measured on, or one line saying why the file is
    not one: a JSON list, a truncated file or a document of another shape must never end in a
    traceback."""
    name = shown_path(path)
    try:
        doc = json.loads(_read_text(path, name))
    except (ValueError, RecursionError) as e:
        raise NetlabError(f"--from-json {name}: is not JSON ({shown(str(e), 60)})", FROM_JSON_FIX) from None
    if not isinstance(doc, dict):
        raise NetlabError(f"--from-json {name}: is a JSON {type(doc).__name__}, not a netlab bench document",
                          FROM_JSON_FIX)
    host = doc.get("host")
    try:
        return report.outcome_from_document(doc), host if isinstance(host, dict) else None
    except NetlabError:
        raise
    except _SHAPE_ERRORS as e:
        raise _not_a_document(name, e) from None


WIDTH = 100  # the report is laid out for 100 columns; a pipe or a file gets exactly that


def _consoles(as_json: bool) -> tuple[Console, Console]:
    """stderr's console and the report's (stderr too under --json, which owns stdout).

    A terminal, or COLUMNS when it is set, gives the width (rich reads both); a pipe or a file
    gets WIDTH rather than rich's 80, which would fold the table it was laid out to fit."""
    def width(stream) -> int | None:
        return None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else WIDTH
    err = Console(stderr=True, width=width(sys.stderr))
    return err, err if as_json else Console(width=width(sys.stdout))


@click.command("bench")
@click.argument("labs", nargs=-1)
@click.option("--duration", type=click.IntRange(1, 600), default=3, show_default=True,
              help="Seconds per iperf3 run.")
@click.option("--repeat", type=click.IntRange(1, 100), default=3, show_default=True,
              help="Rounds: every figure is min/median/max over this many runs.")
@click.option("--parallel", "-P", type=click.IntRange(2, 128), default=4, show_default=True,
              help="Streams of the multi-stream TCP test.")
@click.option("--udp-size", type=click.IntRange(16, 1400), default=64, show_default=True,
              help="Datagram payload of the UDP packets-per-second test.")
@click.option("--offload", type=click.Choice(["on", "off", "both"]), default="on", show_default=True,
              help="TSO/GSO on the sender side: as configured (on), off, or both in one run.")
@click.option("--against-explain", is_flag=True,
              help="Also build each lab with its own 'explain' script and compare (netlab/explain ≥ 0.95).")
@click.option("--prefix", default="", help="Prefix for the instance names the bench brings up (e.g. 'b-').")
@click.option("--json", "as_json", is_flag=True, help="Print the whole result, every raw iperf3 JSON included, on stdout.")
@click.option("--from-json", "from_json", type=click.Path(dir_okay=False), metavar="FILE",
              help="Measure nothing: analyse and print a document an earlier 'netlab bench --json' wrote.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True),
              help="Draw the ratios as a bar chart into this PNG (needs matplotlib).")
def command(labs: tuple[str, ...], duration: int, repeat: int, parallel: int, udp_size: int, offload: str,
            against_explain: bool, prefix: str, as_json: bool, from_json: str | None, plot_path: str | None) -> None:
    """Measure pod-to-pod throughput across nodes for LABS (default: every lab this kernel can run).

    Each lab is brought up (or used, if already up under its name), iperf3 runs from the first pod
    of node 1 to the first pod of node 2 (TCP, TCP with -P streams, small UDP packets), and the lab
    is torn down again if the bench brought it up. The bare underlay and a single veth pair are
    measured in the same interleaved rounds; the table shows each ratio beside the published claim about the datapath (and who measured it).
    """
    err, out = _consoles(as_json)
    settings = Settings(labs=list(labs), duration=duration, repeat=repeat, parallel=parallel, udp_size=udp_size,
                        offload=offload, against_explain=against_explain, prefix=prefix)
    host = None  # this machine's, unless the document says where it was measured
    if from_json is not None:
        outcome, host = read_document(from_json)
        settings = outcome.settings
    else:
        reporter = RichReporter(err)
        try:
            outcome = run(settings, reporter)
        finally:
            reporter.stop()
    try:
        an = report.analyse([t.as_dict() for t in outcome.targets], [s.as_dict() for s in outcome.samples],
                            [t.id for t in outcome.tests], settings.offloads)
        parts = report.render(outcome, an)
    except _SHAPE_ERRORS as e:
        if from_json is None:
            raise  # a run of our own that does not add up is a bug, not bad input
        raise _not_a_document(shown_path(from_json), e) from None
    for part in parts:
        out.print(part, highlight=False)
    if plot_path:
        report.plot(outcome, an, plot_path, host)
        out.print(f" plot: {shown_path(plot_path)}", highlight=False)
    if as_json:
        click.echo(json.dumps(report.document(outcome, an, host), indent=1))
