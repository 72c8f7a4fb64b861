"""``netlab bench [lab ...]``: iperf3 pod to pod across nodes, against baselines and the seed's claims."""

from __future__ import annotations

import json
import sys

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..bench import report
from ..errors import NetlabError
from ..bench.runner import Reporter, Settings, run


class RichReporter(Reporter):
    """A progress bar on stderr: what is running now, runs done, and an estimate of the time left
    (from the runs so far, so it corrects itself when the machine is slower than expected)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("[cyan]~{task.fields[left]} left"),
                                 console=console, transient=True)
        self.task = None
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
        self.progress.update(self.task, advance=1, left=self._left())

    def log(self, msg: str) -> None:
        self.console.print(f"[yellow]  {msg}[/yellow]")

    def stop(self) -> None:
        if self.task is not None:
            self.progress.stop()


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
@click.option("--from-json", "from_json", type=click.File("r"),
              help="Measure nothing: analyse and print a document an earlier 'netlab bench --json' wrote.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, writable=True),
              help="Draw the ratios as a bar chart into this PNG (needs matplotlib).")
def command(labs: tuple[str, ...], duration: int, repeat: int, parallel: int, udp_size: int, offload: str,
            against_explain: bool, prefix: str, as_json: bool, from_json, plot_path: str | None) -> None:
    """Measure pod-to-pod throughput across nodes for LABS (default: every lab this kernel can run).

    Each lab is brought up (or used, if already up under its name), iperf3 runs from the first pod
    of node 1 to the first pod of node 2 (TCP, TCP with -P streams, small UDP packets), and the lab
    is torn down again if the bench brought it up. The bare underlay and a single veth pair are
    measured in the same interleaved rounds; the table shows each ratio beside the seed's claim.
    """
    # Tables are wide; when they go to a file or a pipe, do not squeeze them into 80 columns.
    err = Console(stderr=True, width=None if sys.stderr.isatty() else 200)
    out = err if as_json else Console(width=None if sys.stdout.isatty() else 200)
    settings = Settings(labs=list(labs), duration=duration, repeat=repeat, parallel=parallel, udp_size=udp_size,
                        offload=offload, against_explain=against_explain, prefix=prefix)
    if from_json is not None:
        try:
            outcome = report.outcome_from_document(json.load(from_json))
        except (ValueError, KeyError, TypeError) as e:
            raise NetlabError(f"{from_json.name} is not a netlab bench document ({type(e).__name__}: {e})",
                              "give the file 'netlab bench --json' wrote") from None
        settings = outcome.settings
    else:
        reporter = RichReporter(err)
        try:
            outcome = run(settings, reporter)
        finally:
            reporter.stop()
    an = report.analyse([t.as_dict() for t in outcome.targets], [s.as_dict() for s in outcome.samples],
                        [t.id for t in outcome.tests], settings.offloads)
    for tb in report.tables(outcome, an):
        out.print(tb)
    for line in report.notes(outcome, an):
        out.print(f"  {line}", highlight=False, soft_wrap=True)
    if plot_path:
        report.plot(outcome, an, plot_path)
        out.print(f"  plot: {plot_path}", highlight=False)
    if as_json:
        click.echo(json.dumps(report.document(outcome, an), indent=1))
