"""``netlab exercise …``: troubleshooting exercises on the real datapaths (:mod:`netlab.exercises`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from xml.sax.saxutils import quoteattr

import click

from .. import datapaths, model
from ..errors import NetlabError
from ..exercises import run
from ..exercises.spec import Exercise, ids, load
from ..kernel import probe
from ..kernel.probe import require_root


def _runs_here(ex: Exercise) -> str:
    """'' if this kernel runs the exercise's lab, else why not."""
    try:
        dp = datapaths.get(model.load(ex.lab, name="x").datapath)
    except NetlabError as e:
        return str(e)
    missing = [k for k in dict.fromkeys(dp.requires + ex.requires) if probe.feature(k) is not None]
    return f"needs {'/'.join(missing)}: this kernel lacks it (netlab vm runs it)" if missing else ""


def _name(name: str | None) -> str:
    """The exercise instance: --name, or the only exercise that is running."""
    if name:
        return name
    found = run.running()
    if len(found) == 1:
        return found[0]
    if not found:
        raise NetlabError("no exercise is running", "start one: netlab exercise start <id>")
    raise NetlabError(f"{len(found)} exercises are running ({', '.join(found)})", "say which with --name NAME")


@click.group("exercise")
def command() -> None:
    """Troubleshooting exercises: a fault in a real datapath, hints, and an honest automatic check."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True)
def list_(as_json: bool) -> None:
    """Every exercise: id, title, lab, difficulty, estimated minutes, and whether this kernel runs it."""
    rows: list[dict] = []
    for i in ids():
        ex = load(i)
        why = _runs_here(ex)
        rows.append({"id": ex.id, "title": ex.title, "lab": ex.lab, "difficulty": ex.difficulty,
                     "minutes": ex.minutes, "runs_here": not why, "why_not": why or None})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = shutil.get_terminal_size((100, 24)).columns
    for r in rows:
        stars = "*" * int(r["difficulty"])
        line = f"{r['id']:28} {stars:3} {r['minutes']:3} min  {r['lab']:13} {r['title']}"
        click.echo(line if len(line) <= width else line[:width - 1] + "…")
        if not r["runs_here"]:  # on a line of its own, so that it is never cut off
            click.echo(f"{'':28} ({r['why_not']})"[:width])


@command.command("show")
@click.argument("exercise")
def show(exercise: str) -> None:
    """The task, without the answer: the lab, what you may use, and what counts as solved."""
    ex = load(exercise)
    click.echo(f"{ex.id}: {ex.title}  (difficulty {ex.difficulty}, about {ex.minutes} min, lab {ex.lab})")
    click.echo("\nThe ticket reads like this (the seed picks the nodes):\n  " + ex.ticket.replace("\n", "\n  "))
    click.echo("\nYou may use: every netlab command (guided mode), or only ip, bridge, iptables, tcpdump, ping "
               "(blind mode: start --mode blind).")
    click.echo("Solved means: every flow in the ticket works, every flow that worked still works, the kernel "
               "equals the lab's plan again (nothing missing, different or extra), and it is the same lab.")


@command.command("start")
@click.argument("exercise", required=False)
@click.option("--seed", type=int, help="Reproduce a run: the seed picks the variant, nodes and pods.")
@click.option("--name", help="Instance name (default: the exercise id).")
@click.option("--mode", type=click.Choice(["guided", "blind"]), default="guided", show_default=True)
@click.option("--course", type=click.Path(exists=True, dir_okay=False), help="A course file: start its next unsolved exercise.")
@click.option("--student", help="With --course: whose progress and seeds (default: $USER).")
def start(exercise: str | None, seed: int | None, name: str | None, mode: str, course: str | None,
          student: str | None) -> None:
    """Bring the lab up, break it, and print the ticket."""
    require_root()
    if course:
        student = student or os.environ.get("SUDO_USER") or os.environ.get("USER") or "student"
        for lab in run.running():  # the course moves on: a finished exercise of it is stopped first
            _, rec = run.record_of(lab)
            if rec.course == course and rec.student == student and rec.result in ("solved", "given up"):
                run.stop(lab)
        found = run.course_next(course, student)
        if found is None:
            click.echo(f"{student} has finished every exercise of {course}")
            return
        exercise, seed = found
    if exercise is None:
        raise NetlabError("exercise start needs an exercise id or --course FILE", "see: netlab exercise list")
    h, rec, ex = run.start(exercise, seed, name, mode, course=course, student=student)
    click.echo(f"{ex.id} (seed {rec.seed}, {mode} mode) is up as '{h.name}'.\n")
    click.echo("TICKET: " + run.fill(ex.ticket, rec.ctx))
    tools = "netlab status, trace, capture, exec" if mode == "guided" else "ip, bridge, iptables, tcpdump, ping"
    click.echo(f"\nUse {tools}. Then: netlab exercise check --name {h.name}   (hints: netlab exercise hint)")


@command.command("hint")
@click.option("--name")
def hint(name: str | None) -> None:
    """The next hint: 1 where to look, 2 the broken layer and node, 3 the object. Each is recorded."""
    level, text = run.hint(_name(name))
    click.echo(f"hint {level}: {text}")


@command.command("check")
@click.option("--name")
@click.option("--json", "as_json", is_flag=True)
def check(name: str | None, as_json: bool) -> None:
    """Pass, or what still fails, in terms of the symptom."""
    require_root()
    v = run.check(_name(name))
    if as_json:
        click.echo(json.dumps(v.as_dict(), indent=2))
    else:
        click.echo(("PASSED: " if v.passed else "NOT YET: ") + "\n  ".join(v.lines))
    if not v.passed:
        sys.exit(1)


@command.command("solution")
@click.option("--name")
def solution(name: str | None) -> None:
    """The repair for this variant and why it broke. The exercise then counts as given up."""
    cmds, ex, rec = run.solution(_name(name))
    click.echo("# the repair (this variant):")
    for c in cmds:
        click.echo(c)
    if ex.explanation:
        click.echo("\n" + run.fill(ex.explanation, rec.ctx))
    if ex.see:
        click.echo(f"\nSee {ex.see}.")


@command.command("reset")
@click.option("--name")
def reset(name: str | None) -> None:
    """Start again from scratch: a fresh lab, the same fault (same seed)."""
    require_root()
    h, rec, ex = run.reset(_name(name))
    click.echo(f"{ex.id} reset (seed {rec.seed}). TICKET: " + run.fill(ex.ticket, rec.ctx))


@command.command("stop")
@click.option("--name")
def stop(name: str | None) -> None:
    """Tear the exercise's lab down (its record goes to the report)."""
    require_root()
    n = _name(name)
    run.stop(n)
    click.echo(f"stopped {n}")


@command.command("report")
@click.option("--json", "as_json", is_flag=True)
@click.option("--junit", type=click.Path(dir_okay=False, writable=True), help="Also write a JUnit XML file.")
def report(as_json: bool, junit: str | None) -> None:
    """For instructors: per run, the result, the time to solve, the hints used and the checks tried."""
    rows = run.report()
    if junit:
        with open(junit, "w") as f:
            f.write(_junit(rows))
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no exercise has been run")
    for r in rows:
        took = f"{r['seconds']:.0f}s" if r["seconds"] is not None else "-"
        click.echo(f"{r['id']:28} {r['result']:12} {took:>7}  hints {r['hints']}  checks {r['checks']}  "
                   f"seed {r['seed']} ({r['variant']}, {r['mode']})")


def _junit(rows: list[dict]) -> str:
    cases = []
    for r in rows:
        body = "" if r["result"] == "solved" else f"<failure message={quoteattr(r['result'])}/>"
        cases.append(f"  <testcase classname=\"netlab.exercise\" name={quoteattr(r['id'] + ' seed ' + str(r['seed']))}"
                     f" time=\"{r['seconds'] or 0}\">{body}</testcase>")
    failed = sum(1 for r in rows if r["result"] != "solved")
    return (f"<?xml version=\"1.0\"?>\n<testsuite name=\"netlab exercises\" tests=\"{len(rows)}\" "
            f"failures=\"{failed}\">\n" + "\n".join(cases) + "\n</testsuite>\n")


@command.command("restart")
@click.argument("host")
@click.argument("daemon")
@click.option("--name")
def restart(host: str, daemon: str, name: str | None) -> None:
    """Start HOST's planned DAEMON again (after it was stopped or killed), as 'up' started it."""
    require_root()
    pid = run.restart_daemon(_name(name), host, daemon)
    click.echo(f"{daemon} on {host} started again (pid {pid})")


@command.command("validate")
@click.argument("exercises", nargs=-1, required=True, metavar="EXERCISE...")
@click.option("-j", "--parallel", type=click.IntRange(1, 16), default=1, show_default=True,
              help="seeds validated at once (each in its own randomly named lab)")
def validate(exercises: tuple[str, ...], parallel: int) -> None:
    """Check exercises end to end, 3 seeds or more each (every variant): fault, check fails, solution, check passes,
    a rebuilt lab and the workaround are refused, nothing left."""
    require_root()
    results = run.validate_all(list(exercises), parallel=parallel, log=click.echo)
    failures = [f"{ref}: {f}" if len(results) > 1 else f for ref, fs in results.items() for f in fs]
    for f in failures:
        click.echo(f"FAILED {f}", err=True)
    if failures:
        sys.exit(1)
