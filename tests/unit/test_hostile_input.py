"""Hostile lab files and CLI input (issue 9): every case is refused with one line
``netlab: <what> — <fix>``, a non-zero exit, nothing created, in bounded time and memory, and
no message echoes an unbounded user value. No root needed: all of it is refused before netlab
looks at the kernel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from netlab import entry, model
from netlab.errors import LabFileError, NetlabError
from tests.helpers import ROOT

NETLAB = [sys.executable, "-m", "netlab"]
BASE = "datapath: flannel-vxlan\n"
MAX_MESSAGE = 300  # characters of one error message, whatever the input
SECONDS = 2.0  # per refusal, on a loaded 2-core machine (they take milliseconds)


def _bomb(levels: int = 9) -> str:
    """The billion laughs: 9 levels of 9 aliases, 9**9 strings once expanded."""
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    return BASE + "\n".join(lines) + f"\ndescription: *l{levels}\n"


def refused(tmp_path: Path, content: str | bytes, *words: str, name: str = "lab.yaml") -> str:
    """Write ``content`` as a lab file; model.load must refuse it with one short line."""
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    t0 = time.monotonic()
    with pytest.raises(NetlabError) as e:
        model.load(str(path), name="fz")
    elapsed = time.monotonic() - t0
    msg = str(e.value)
    assert isinstance(e.value, LabFileError), msg
    assert len(msg.splitlines()) == 1 and msg.isprintable(), repr(msg)
    assert len(msg) < MAX_MESSAGE, msg
    assert " — " in msg, msg
    assert elapsed < SECONDS, f"{elapsed:.2f}s: {msg}"
    for w in words:
        assert w in msg, msg
    return msg


# -- the cases the fuzz found ---------------------------------------------------------------------

@pytest.mark.parametrize("options", ["[1, 2]", "hello", "42", "true", "'{vni: 1}'"])
def test_options_that_is_not_a_mapping(tmp_path, options):
    refused(tmp_path, BASE + f"options: {options}\n", "options", "must be a mapping")


@pytest.mark.parametrize("content, where", [
    (BASE.encode() + b"description: caf\xe9\n", "line 2"),
    (b"\xff\xfe" + "datapath: x\n".encode("utf-16-le"), "line 1"),
    (BASE.encode() + b"\x80" * 100, "line 2"),
])
def test_non_utf8_bytes(tmp_path, content, where):
    refused(tmp_path, content, "not UTF-8", where)


@pytest.mark.parametrize("content", [
    BASE + "options: " + "[" * 100_000 + "]" * 100_000 + "\n",
    BASE + "options: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n",
    BASE + "".join("  " * i + f"k{i}:\n" for i in range(3000)),
    BASE + "".join("  " * i + "-\n" for i in range(3000)),
])
def test_deep_nesting(tmp_path, content):
    msg = refused(tmp_path, content)
    assert "nest" in msg or "YAML" in msg, msg


@pytest.mark.parametrize("content, word", [
    (_bomb(), "&l0"),
    (BASE + "description: &d x\n", "anchor"),
    ('d: &d "x"\n' + BASE + "description: *d\n", "anchor"),
    (BASE + "description: *nowhere\n", "alias"),
])
def test_aliases_and_anchors_are_refused(tmp_path, content, word):
    refused(tmp_path, content, "line", word)


def test_the_alias_bomb_is_refused_fast_in_bounded_memory(tmp_path):
    """In a child limited to 1 GiB of address space: the bomb that used 3 GB in 25 s must be
    refused in under 2 s without coming near the limit."""
    lab = tmp_path / "bomb.yaml"
    lab.write_text(_bomb())
    code = textwrap.dedent(f"""
        import resource, sys, time
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        from netlab import model
        from netlab.errors import LabFileError
        t0 = time.monotonic()
        try:
            model.load({str(lab)!r}, name="fz")
        except LabFileError as e:
            print(f"{{time.monotonic() - t0:.3f}} {{e}}")
            sys.exit(0)
        sys.exit("accepted")
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert r.returncode == 0, r.stderr[-2000:]
    seconds, msg = r.stdout.split(" ", 1)
    assert float(seconds) < 2.0 and "anchor" in msg, r.stdout


@pytest.mark.parametrize("content, key, lines", [
    (BASE + "nodes: 2\npods: 1\nnodes: 3\n", "nodes", ("line 4", "first on line 2")),
    (BASE + "underlay: {cidr: 10.0.0.0/24, cidr: 10.9.0.0/24}\n", "cidr", ("line 2",)),
    (BASE + "options:\n  vni: 1\n  vni: 2\n", "vni", ("line 4", "first on line 3")),
    ("datapath: flannel-vxlan\ndatapath: calico-bgp\n", "datapath", ("line 2",)),
])
def test_duplicate_keys_name_the_key_and_the_line(tmp_path, content, key, lines):
    refused(tmp_path, content, "duplicate key", repr(key), *lines)


@pytest.mark.parametrize("field, cidr, what", [
    ("underlay", "127.0.0.0/24", "loopback"),
    ("underlay", "127.255.255.0/28", "loopback"),
    ("underlay", "169.254.0.0/24", "link-local"),
    ("underlay", "0.0.0.0/24", "0.0.0.0/8"),
    ("underlay", "224.0.0.0/24", "multicast"),
    ("underlay", "239.255.255.0/24", "multicast"),
    ("underlay", "240.0.0.0/24", "reserved"),
    ("underlay", "255.255.255.0/24", "reserved"),
    ("pod_cidr", "127.0.0.0/16", "loopback"),
    ("pod_cidr", "169.254.0.0/16", "link-local"),
    ("pod_cidr", "0.0.0.0/0", "0.0.0.0/8"),
    ("pod_cidr", "224.0.0.0/4", "multicast"),
    ("pod_cidr", "240.0.0.0/8", "reserved"),
])
def test_reserved_cidrs_are_refused(tmp_path, field, cidr, what):
    text = BASE + (f"underlay: {{cidr: {cidr}}}\n" if field == "underlay" else f"pod_cidr: {cidr}\n")
    refused(tmp_path, text, "underlay.cidr" if field == "underlay" else "pod_cidr", what)


def test_a_second_rack_running_into_multicast_is_refused(tmp_path):
    refused(tmp_path, BASE + "underlay: {cidr: 223.255.255.0/24, racks: 2}\n", "underlay.cidr", "multicast")


@pytest.mark.parametrize("cidr", ["fd00::/64", "::/0", "2001:db8::/32", "::ffff:10.0.0.0/104"])
def test_ipv6_cidrs_get_a_clear_answer(tmp_path, cidr):
    refused(tmp_path, BASE + f"pod_cidr: '{cidr}'\n", "pod_cidr", "IPv6", "IPv4 only")


@pytest.mark.parametrize("field, value, words", [
    ("underlay", "10.0.0.0/24", ("underlay", "mapping")),
    ("underlay", "[1, 2]", ("underlay", "mapping")),
    ("description", "42", ("description", "text")),
    ("description", "[a, b]", ("description", "text")),
    ("description", "2024-01-01", ("description", "text", "2024-01-01")),
    ("description", "'" + "x" * 4000 + "'", ("description", "at most")),
    ("description", '"two\\nlines"', ("description", "one line")),
    ("datapath", "[flannel-vxlan]", ("datapath", "not a datapath name")),
    ("datapath", "42", ("datapath", "not a datapath name")),
    ("nodes", "2.5", ("nodes", "integer")),
    ("nodes", "true", ("nodes", "integer")),
    ("nodes", "'\u0663'", ("nodes", "integer")),  # an Arabic-Indic digit: isdigit() says yes, int() says no
    ("nodes", "0x" + "f" * 4000, ("nodes", "-bit integer")),
    ("nodes", "1" + ":59" * 1300, ("nodes", "-bit integer")),  # YAML 1.1 base 60
    ("nodes", "9" * 5000, ("characters",)),
    ("pods", "-1", ("pods", "from 0")),
    ("pod_cidr", "10.244.0.0", ("pod_cidr", "too small")),
    ("pod_cidr", "42", ("pod_cidr", "IPv4 network")),
    ("pod_cidr", "[10.244.0.0/16]", ("pod_cidr", "IPv4 network")),
    ("description", "2024-02-30", ("cannot be read",)),
])
def test_every_field_has_its_type_checked(tmp_path, field, value, words):
    refused(tmp_path, BASE + f"{field}: {value}\n" if field != "datapath" else f"datapath: {value}\n", *words)


@pytest.mark.parametrize("content, words", [
    (BASE + "nodes: !!str 3\n", ("tag",)),
    (BASE + "x: !!python/object/apply:os.system ['touch /tmp/netlab-pwned']\n", ("tag",)),
    (BASE + "<<: {nodes: 3}\n", ("merge",)),
    (BASE + "? [a, b]\n: 1\n", ("key is a list",)),
    (BASE + "---\n" + BASE, ("more than one YAML document",)),
    (BASE + "options: [" + ", ".join(["1"] * 50_000) + "]\n", ("YAML values",)),
    (BASE + "description: a\x07b\n", ("control characters", "line 2")),
    (BASE + "description: a\x00b\n", ("control characters",)),
    ("- 1\n- 2\n", ("must be a YAML mapping",)),
    ("datapath: flannel-vxlan\nnodes: [2\n", ("YAML syntax error at line",)),
])
def test_yaml_that_a_lab_file_never_needs(tmp_path, content, words):
    refused(tmp_path, content, *words)
    assert not Path("/tmp/netlab-pwned").exists()


@pytest.mark.parametrize("content", [
    BASE + "description: " + "é" * 200_000 + "\n",
    BASE + "y" * 100_000 + ": 1\n",
    BASE + '"' + "k\\n" * 1000 + '": 1\n',
    BASE + "options: {" + "z" * 3000 + ": 1}\n",
    BASE + "datapath2: " + "q" * 3000 + "\n",
    "datapath: " + "a" * 4000 + "\n",
])
def test_messages_never_echo_an_unbounded_value(tmp_path, content):
    msg = refused(tmp_path, content)
    for run in ("é" * 50, "y" * 50, "k\\nk\\nk\\nk\\nk\\nk\\nk\\nk\\nk\\nk\\nk\\n", "z" * 50, "q" * 50, "a" * 50):
        assert run not in msg, msg


def test_the_size_of_the_file_is_capped(tmp_path):
    refused(tmp_path, BASE + "#" * model.MAX_FILE_BYTES, "bytes")
    # just under the cap, in comments: read and accepted, quickly
    ok = tmp_path / "big.yaml"
    ok.write_text(BASE + ("# " + "c" * 1000 + "\n") * (model.MAX_FILE_BYTES // 1003))
    t0 = time.monotonic()
    assert model.load(str(ok), name="fz").datapath == "flannel-vxlan"
    assert time.monotonic() - t0 < SECONDS


# -- paths that are not lab files ------------------------------------------------------------------

def test_a_directory_is_refused(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    for p in (tmp_path / "dir.yaml", tmp_path):
        with pytest.raises(LabFileError, match="is a directory"):
            model.load(str(p), name="fz")


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(LabFileError, match="is a FIFO"):
        model.load(str(fifo), name="fz")  # opening it would wait for a writer forever
    assert time.monotonic() - t0 < SECONDS


@pytest.mark.parametrize("dev, kind", [("/dev/null", "character device"), ("/dev/zero", "character device")])
def test_a_device_is_refused(dev, kind):
    with pytest.raises(LabFileError, match=kind):
        model.load(dev, name="fz")


@pytest.mark.parametrize("lab, words", [
    ("/nonexistent/dir/lab.yaml", ("file not found",)),
    ("./nope.yaml", ("file not found",)),
    ("nope.yml", ("file not found",)),
    ("no-such-lab", ("unknown lab", "vxlan")),
    ("x" * 10_000, ("unknown lab", "...")),
    ("a\0b", ("neither a lab name nor a path",)),
    ("", ("neither a lab name nor a path",)),
])
def test_missing_paths_and_names(lab, words):
    with pytest.raises(LabFileError) as e:
        model.load(lab)
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and len(msg) < MAX_MESSAGE, msg
    for w in words:
        assert w in msg, msg


@pytest.mark.parametrize("name", ["", "Bad", "../x", "a" * 10_000, "x\ny"])
def test_instance_names_are_checked_by_the_one_rule(name):
    with pytest.raises(LabFileError, match="lab name") as e:
        model.load("vxlan", name=name)
    assert len(str(e.value)) < MAX_MESSAGE and len(str(e.value).splitlines()) == 1


def test_a_file_name_that_is_no_instance_name_says_how_to_name_it(tmp_path):
    p = tmp_path / "My Lab.yaml"
    p.write_text(BASE)
    with pytest.raises(LabFileError, match="lab name 'My Lab'.*--name"):
        model.load(str(p))
    assert model.load(str(p), name="fz").name == "fz"


@pytest.mark.parametrize("overrides, words", [
    ({"nodes": "x" * 5000}, ("nodes", "...")),
    ({"options": {"vni": "1" * 5000}}, ("options.vni",)),
    ({"options": {"k" * 5000: 1}}, ("unknown field",)),
    ({"options": "vni=5"}, ("override options", "mapping")),
    ({"w" * 5000: 1}, ("override", "unknown field")),
])
def test_overrides_are_bounded_too(overrides, words):
    with pytest.raises(LabFileError) as e:
        model.load("vxlan", name="fz", overrides=overrides)
    msg = str(e.value)
    assert len(msg) < MAX_MESSAGE and len(msg.splitlines()) == 1, msg
    for w in words:
        assert w in msg, msg


def test_every_shipped_lab_still_loads():
    for p in model.available():
        assert model.load(str(p)).name == p.stem


# -- the command line --------------------------------------------------------------------------------

def run_cli(*args: str, timeout: float = 10, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(NETLAB + list(args), capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env)


def one_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode not in (0, None), (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("netlab: ") and " — " in line and len(line) < MAX_MESSAGE + 10, line
    for w in words:
        assert w in line, line
    return line


def test_cli_lab_file_that_is_a_directory(tmp_path):
    (tmp_path / "d.yaml").mkdir()
    one_line(run_cli("up", str(tmp_path / "d.yaml"), "--name", "fzdir"), "is a directory")
    one_line(run_cli("explain", str(tmp_path)), "is a directory")


def test_cli_lab_file_that_is_a_fifo_does_not_hang(tmp_path):
    fifo = tmp_path / "f.yaml"
    os.mkfifo(fifo)
    one_line(run_cli("up", str(fifo), "--name", "fzfifo", timeout=10), "is a FIFO")
    one_line(run_cli("explain", str(fifo), timeout=10), "is a FIFO")


def test_cli_empty_name_is_refused():
    one_line(run_cli("up", "vxlan", "--name", ""), "lab name ''")
    one_line(run_cli("explain", "vxlan", "--name", ""), "lab name ''")


def test_cli_hostile_lab_file(tmp_path):
    lab = tmp_path / "bomb.yaml"
    lab.write_text(_bomb())
    one_line(run_cli("up", str(lab), "--name", "fzbomb"), "anchor")


def test_capture_into_a_missing_directory():
    one_line(run_cli("capture", "vxlan", "node1:eth0", "-w", "/nonexistent/dir/x.pcap"), "does not exist")


def test_capture_into_a_directory(tmp_path):
    one_line(run_cli("capture", "vxlan", "node1:eth0", "-w", str(tmp_path)), "is a directory")


@pytest.mark.parametrize("content, words", [
    ("[]", ("JSON list",)),
    ('"x"', ("JSON str",)),
    ("42", ("JSON int",)),
    ("{", ("not JSON",)),
    ("[" * 100_000 + "]" * 100_000, ("not JSON",)),
    ('{"schema": "' + "s" * 5000 + '"}', ("not a netlab bench document",)),
    ('{"schema": "netlab-bench/1"}', ("not a netlab bench document",)),
    ('{"schema": "netlab-bench/1", "settings": []}', ("not a netlab bench document",)),
])
def test_bench_from_json_of_the_wrong_shape(tmp_path, content, words):
    f = tmp_path / "doc.json"
    f.write_text(content)
    line = one_line(run_cli("bench", "--from-json", str(f)), *words)
    assert "s" * 50 not in line


def test_bench_from_json_refuses_a_fifo_and_junk(tmp_path):
    fifo = tmp_path / "doc.json"
    os.mkfifo(fifo)
    one_line(run_cli("bench", "--from-json", str(fifo), timeout=10), "not a regular file")
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"\xff\xfe\x00garbage")
    one_line(run_cli("bench", "--from-json", str(junk)), "not UTF-8")


def test_list_survives_a_labs_directory_with_hostile_entries(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "bomb.yaml").write_text(_bomb())
    (tmp_path / "good.yaml").write_text(BASE)
    r = run_cli("list", env=dict(os.environ, NETLAB_LABS=str(tmp_path)))
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "flannel-vxlan" in r.stdout and "invalid" in r.stdout


def _python_startup() -> float:
    """Wall time before any netlab code runs: the interpreter's own start (site, the venv's .pth
    files) and the prelude of pip's console-script wrapper (``import re, sys``), which netlab
    does not write and cannot guard."""
    best = 1.0
    for _ in range(3):
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-c", "import re, sys"], check=True)
        best = min(best, time.monotonic() - t0)
    return best


def _commands() -> list[list[str]]:
    """``python -m netlab`` and, when it is installed pointing at netlab.entry, the console script."""
    script = Path(sys.executable).parent / "netlab"
    found = [NETLAB]
    if script.exists() and "netlab.entry" in script.read_text(errors="replace"):
        found.append([str(script)])
    return found


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(Path(x).name for x in c))
def test_ctrl_c_at_any_moment_is_one_line_and_exit_130(command):
    """SIGINT at points across the first 0.3 s of `netlab list`, the heavy imports included.

    The earliest point is just after the interpreter's own start-up: a SIGINT *inside* CPython's
    import of site (the first ~20 ms) is reported by CPython itself ("Fatal Python error:
    init_import_site") before any netlab code exists to handle it. A point that still lands there
    on a loaded machine is tried again a little later, and says so in the failure message."""
    start = _python_startup()
    points = [start * 1.5 + k * (0.3 - start * 1.5) / 9 for k in range(10)]
    seen = []
    for delay in points:
        for attempt in range(3):
            p = subprocess.Popen(command + ["list"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 text=True)
            time.sleep(delay + attempt * 0.01)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
            if "init_import_site" not in err:
                break
        seen.append((round(delay, 3), p.returncode))
        assert "Traceback" not in err and "Exception ignored" not in err, (delay, attempt, err)
        if p.returncode == 0:  # finished before the signal came: the whole table was printed
            assert "vxlan" in out and not err.strip(), (delay, err)
            continue
        if p.returncode == -signal.SIGINT:  # before the interpreter installed its handler: silent
            assert not err, (delay, err)
            continue
        assert p.returncode == 130, (delay, p.returncode, err)
        assert err.strip().splitlines() == [err.strip()] and err.startswith("netlab: interrupted — "), err
    assert any(rc == 130 for _, rc in seen), seen  # the imports really were interrupted


# -- unexpected exceptions ---------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _sigint_restored():
    """entry's handlers ignore Ctrl-C once they have decided to exit; keep pytest interruptible."""
    yield
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_bug_is_one_line_exit_70_and_names_itself(monkeypatch):
    from click.testing import CliRunner

    from netlab.cli import cli

    def boom(*a, **kw):
        raise RuntimeError("injected\nfailure " + "x" * 5000)

    monkeypatch.setattr("netlab.model.load", boom)
    monkeypatch.delenv("NETLAB_DEBUG", raising=False)
    res = CliRunner().invoke(cli, ["explain", "vxlan"])
    assert res.exit_code == entry.EXIT_BUG
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "netlab bug" in lines[0] and "RuntimeError: injected\\nfailure" in lines[0], res.output
    assert "NETLAB_DEBUG=1" in lines[0] and len(lines[0]) < MAX_MESSAGE + 100
    monkeypatch.setenv("NETLAB_DEBUG", "1")
    res = CliRunner().invoke(cli, ["explain", "vxlan"])
    assert res.exit_code == entry.EXIT_BUG and "Traceback" in res.output and "netlab bug" in res.output


def test_a_ctrl_c_python_wrapped_inside_a_command_is_still_an_interrupt(monkeypatch):
    """The same wrapped Ctrl-C, raised inside a command (its lazy imports): exit 130 and the
    rollback line, not "internal error" and 70."""
    from click.testing import CliRunner

    from netlab.cli import cli

    monkeypatch.setattr("netlab.model.load", lambda *a, **kw: _set_name_interrupted())
    res = CliRunner().invoke(cli, ["explain", "vxlan"])
    assert res.exit_code == 130, res.output
    assert res.output.strip() == "netlab: interrupted — whatever was being built has been rolled back"


def _set_name_interrupted():
    """A Ctrl-C while a class is built (a lazy import in a command): Python 3.11 hands it on as
    RuntimeError("Error calling __set_name__ …") caused by the KeyboardInterrupt. Seen in CI."""

    class Field:
        def __set_name__(self, owner, name):
            raise KeyboardInterrupt

    try:
        type("Options", (), {"mtu": Field()})
    except KeyboardInterrupt:  # Python 3.12+ lets it through unwrapped: wrap it as 3.11 does
        raise RuntimeError("Error calling __set_name__ on 'Field' instance 'mtu' in 'Options'") from KeyboardInterrupt()


def test_guarded_turns_every_outcome_into_an_exit_code(capsys):
    def raises(exc: BaseException):
        def run():
            raise exc
        return run

    cases = [(raises(KeyboardInterrupt()), 130, "interrupted"), (raises(ValueError("v")), 70, "ValueError: v"),
             (_set_name_interrupted, 130, "interrupted"),
             (raises(LabFileError("bad", "fix")), 2, "netlab: bad — fix"), (lambda: None, 0, "")]
    for run, code, words in cases:
        with pytest.raises(SystemExit) as e:
            entry.guarded(run)
        assert e.value.code == code
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) <= 1, err


def test_list_json_names_every_lab_and_what_it_needs():
    import json as _json

    r = run_cli("list", "--json")
    assert r.returncode == 0, r.stderr
    labs = {x["lab"]: x for x in _json.loads(r.stdout)["labs"]}
    assert {"vxlan", "calico", "docker-nat"} <= set(labs) and labs["vxlan"]["datapath"] == "flannel-vxlan"
