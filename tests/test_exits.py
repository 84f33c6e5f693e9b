"""Issue 19: what the target's own code raises, and where the CLI writes.

``sys.exit`` (any status) and every ``BaseException`` but ``KeyboardInterrupt`` raised by
the user's code, at import, in a class or factory, in the forward, become the one-line
exit-2 error; Ctrl-C exits 130 with one line. ``--output`` and ``--plot`` refuse special
files, existing files without ``--force`` and the target's own file even with it, before
any work. Driven as a user does, in a subprocess, wherever that costs no torch import; the
cases that import torch run in-process in the fast tier and in a subprocess in the slow one.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from convzoo import AnalysisError, analyze
from convzoo.cli import main
from convzoo.errors import ConvZooError, UserCodeError, user_code

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "configs" / "seed_64x64_5x5.yaml"

NET = """
import sys
from torch import nn

class Boom(BaseException):
    pass

def exit0():
    sys.exit(0)

def exit3():
    sys.exit(3)

def boom():
    raise Boom("bang\\nsecond line")

def generator():
    raise GeneratorExit

def interrupt():
    raise KeyboardInterrupt

RAISE = {f.__name__: f for f in (exit0, exit3, boom, generator, interrupt)}

class Inner(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):
        RAISE[self.how]()

class Net(nn.Module):
    input_size = (4,)

    def __init__(self, how="exit0"):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        self.inner = Inner(how)

    def forward(self, x):
        return self.inner(self.fc(x))

def factory(how="exit0"):
    RAISE[how]()
"""

ERRORS = {  # how -> (exit status, the end of the one stderr line)
    "exit0": (2, "SystemExit: 0"),
    "exit3": (2, "SystemExit: 3"),
    "boom": (2, "Boom: bang"),
    "generator": (2, "GeneratorExit"),
    "interrupt": (130, "convzoo: interrupted"),
}


def convzoo(*argv: str | Path, cwd: Path, timeout: float = 60) -> tuple[int, str, str]:
    """``python -m convzoo ARGV`` as a user runs it (this checkout first on the path)."""
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    done = subprocess.run(
        [sys.executable, "-m", "convzoo", *map(str, argv)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,  # a FIFO opened for writing would block forever
    )
    return done.returncode, done.stdout, done.stderr


def one_line(err: str, status: int, code: int, end: str) -> None:
    """Exactly one stderr line, ending in ``end``, and the exit status ``code``."""
    assert status == code and err.count("\n") == 1 and "Traceback" not in err, (status, err)
    assert err.rstrip("\n").endswith(end), err
    assert err.startswith("convzoo: error: " if code == 2 else "convzoo: interrupted"), err


# -- the user's code ------------------------------------------------------------------------


@pytest.mark.parametrize("status", [0, pytest.param(3, marks=pytest.mark.slow)])
def test_sys_exit_at_import_is_one_line(tmp_path: Path, status: int) -> None:
    (tmp_path / "net.py").write_text(f"import sys\nsys.exit({status})\n")
    code, out, err = convzoo("report", "net.py:Net", cwd=tmp_path)
    assert out == ""
    one_line(err, code, 2, f"cannot import 'net.py': SystemExit: {status}")


@pytest.mark.parametrize("how", sorted(ERRORS))
@pytest.mark.parametrize("where", ["import", "factory", "forward"])
def test_user_code_in_process(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str, how: str
) -> None:
    net = tmp_path / f"net_{where}_{how}.py"
    net.write_text(NET + (f"\nRAISE[{how!r}]()\n" if where == "import" else ""))
    name = {"import": "Net", "factory": "factory", "forward": "Net"}[where]
    code = main(["report", f"{net}:{name}", "--kwargs", f'{{"how": "{how}"}}'])
    out, err = capsys.readouterr()
    status, end = ERRORS[how]
    assert out == ""
    one_line(err, code, status, end)
    if where == "forward" and status == 2:
        assert f"in layer 'inner': {end}" in err, err  # the layer, not a real-tensor retry


def test_a_module_attribute_that_exits_is_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "lazy.py").write_text("import sys\ndef __getattr__(name):\n    sys.exit(4)\n")
    assert main(["report", f"{tmp_path / 'lazy.py'}:Net"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.endswith("lazy.py:Net: reading 'Net': SystemExit: 4\n"), err


def test_the_last_resort_catches_an_exit_anywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exit from code no ``user_code`` surrounds (here: the command itself)."""
    from convzoo import cli

    monkeypatch.setitem(cli.COMMANDS, "list", lambda args: sys.exit(5))
    assert main(["list"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == "convzoo: error: stopped by the target's code: SystemExit: 5\n"


def test_help_and_version_still_exit_0(tmp_path: Path) -> None:
    code, out, err = convzoo("--version", cwd=tmp_path)
    assert (code, err) == (0, "") and out.startswith("convzoo ")
    code, out, err = convzoo("report", "--help", cwd=tmp_path)
    assert (code, err) == (0, "") and "--force" in out


class Exits(nn.Module):
    """Exits on meta tensors only: a real-tensor fallback would hide the exit."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_meta:
            sys.exit(0)
        return self.fc(x)


def test_analyze_raises_instead_of_ending_the_program() -> None:
    with pytest.raises(AnalysisError, match=r"^model fails for input 1x4: SystemExit: 0$"):
        analyze(Exits(), (4,))
    with pytest.raises(AnalysisError, match=r"in train mode .*SystemExit: 0$"):
        analyze(nn.Sequential(nn.Linear(4, 2), TrainExit()), (4,), optimizer="sgd")


class TrainExit(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            sys.exit(0)
        return x


def test_user_code_converts_what_would_end_the_program() -> None:
    for raised in (SystemExit(3), GeneratorExit(), KeyboardInterrupt(), ValueError("v")):
        for everything in (False, True):
            passes = isinstance(raised, KeyboardInterrupt) or (
                isinstance(raised, Exception) and not everything
            )
            expected = type(raised) if passes else UserCodeError
            with pytest.raises(expected) as caught, user_code("calling f", everything=everything):
                raise raised
            if not passes:
                assert str(caught.value) == f"calling f: {type(raised).__name__}" + (
                    f": {raised}" if str(raised) else ""
                )
                assert isinstance(caught.value, ConvZooError)


# -- the files the CLI writes -------------------------------------------------------------


@pytest.fixture
def place(tmp_path: Path) -> Path:
    """A directory with a config, a FIFO, links to both, a file and a package module."""
    (tmp_path / "net.yaml").write_text(SEED.read_text())
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "to_fifo").symlink_to("fifo")
    (tmp_path / "to_net.yaml").symlink_to("net.yaml")
    (tmp_path / "nowhere").symlink_to("missing")
    (tmp_path / "old.txt").write_text("keep")
    (tmp_path / "dir").mkdir()
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("raise RuntimeError('never imported')\n")
    (tmp_path / "pkg" / "net.py").write_text("keep")
    return tmp_path


READS = "which the command reads (never overwritten, even with --force)"
REFUSED = [  # (target, --output, with --force, the end of the error)
    ("net.yaml", "fifo", True, "it is a FIFO (a named pipe)"),
    ("net.yaml", "to_fifo", True, "it is a symbolic link to a FIFO (a named pipe)"),
    ("net.yaml", "dir", True, "it is a directory"),
    ("net.yaml", "nowhere", True, "it is a symbolic link to nothing"),
    ("net.yaml", "/dev/null", True, "it is a character device"),
    ("net.yaml", "missing/r.txt", False, "no directory 'missing'"),
    ("net.yaml", "old.txt", False, "'old.txt' exists; pass --force (force=True) to overwrite it"),
    ("net.yaml", "net.yaml", False, f"'net.yaml', {READS}"),
    ("net.yaml", "net.yaml", True, f"'net.yaml', {READS}"),
    ("net.yaml", "to_net.yaml", True, f"'net.yaml', {READS}"),
    ("pkg.net:Net", "pkg/net.py", True, f"net.py', {READS}"),
]  # fmt: skip


@pytest.mark.parametrize(("target", "output", "force", "end"), REFUSED)
def test_output_refusals(place: Path, target: str, output: str, force: bool, end: str) -> None:
    """Refused before any work, so without importing torch: milliseconds each."""
    argv = ["report", target, "--output", output, *(["--force"] if force else [])]
    code, out, err = convzoo(*argv, cwd=place, timeout=30)
    assert out == ""
    one_line(err, code, 2, end)
    assert (place / "net.yaml").read_text() == SEED.read_text()
    assert (place / "old.txt").read_text() == "keep" and (
        place / "pkg" / "net.py"
    ).read_text() == "keep"


def test_output_force_replaces_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    old = tmp_path / "r.json"
    old.write_text("old")
    assert main(["report", str(SEED), "--format", "json", "--output", str(old), "--force"]) == 0
    assert capsys.readouterr() == ("", "") and '"totals"' in old.read_text()
    new = tmp_path / "new.json"
    assert main(["report", str(SEED), "--format", "json", "--output", str(new)]) == 0
    assert new.read_text() == old.read_text()


def test_plots_follow_the_same_rule(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, place: Path
) -> None:
    """``--plot`` of ``rf`` and ``compare``: a link to the config is never written over."""
    config = ROOT / "configs" / "compare" / "bottleneck_vs_two_3x3.yaml"
    (place / "compare.yaml").write_text(config.read_text())
    (place / "c.png").symlink_to("compare.yaml")
    (place / "n.png").symlink_to("net.yaml")
    (place / "f.png").symlink_to("fifo")
    cases = [
        (["compare", str(place / "compare.yaml"), "--plot", str(place / "c.png")], "reads"),
        (["rf", str(place / "net.yaml"), "--plot", str(place / "n.png")], "reads"),
        (["rf", str(place / "net.yaml"), "--plot", str(place / "f.png")], "a FIFO"),
    ]
    for argv, words in cases:
        assert main([*argv, "--force"]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.count("\n") == 1 and words in err, err
    assert (place / "compare.yaml").read_text() == config.read_text()


# -- the same, in a subprocess, where torch is imported -----------------------------------


@pytest.mark.slow  # six subprocesses that import torch (~2 s each)
@pytest.mark.parametrize(
    ("where", "how"),
    [("factory", "exit0"), ("factory", "exit3"), ("forward", "exit0"), ("forward", "exit3")]
    + [("forward", "boom"), ("forward", "interrupt")],
)
def test_user_code_in_a_subprocess(tmp_path: Path, where: str, how: str) -> None:
    (tmp_path / "net.py").write_text(NET)
    name = "factory" if where == "factory" else "Net"
    code, out, err = convzoo(
        "report", f"net.py:{name}", "--kwargs", f'{{"how": "{how}"}}', cwd=tmp_path
    )
    assert out == ""
    one_line(err, code, *ERRORS[how])


@pytest.mark.slow  # imports torch
def test_output_is_written_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "r.txt").write_text("old")
    code, out, err = convzoo("report", SEED, "--output", "r.txt", "--force", cwd=tmp_path)
    assert (code, out, err) == (0, "", "") and "seed_64x64_5x5" in (tmp_path / "r.txt").read_text()


class RealExit(nn.Module):
    """Runs on meta tensors; exits on real ones (the effective field's and fvcore's forward)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_meta:
            sys.exit(0)
        return self.conv(x)


def test_real_tensor_forwards_raise_instead_of_ending_the_program() -> None:
    from convzoo.analysis.peers import compare_fvcore
    from convzoo.plots import effective_field

    with pytest.raises(UserCodeError, match=r"effective field\): SystemExit: 0$"):
        effective_field(RealExit(), (1, 8, 8), samples=1)
    pytest.importorskip("fvcore")
    with pytest.raises(UserCodeError, match=r"under fvcore: SystemExit: 0$"):
        compare_fvcore(RealExit(), (1, 8, 8))
