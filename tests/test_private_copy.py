"""What the analyzer's private copy shares, recreates and refuses (copier.py): locks and
counters beside them, containers and objects holding uncopyable leaves, handles that
``copy.deepcopy`` shares, and the one-line refusal naming what cannot be copied."""

from __future__ import annotations

import collections
import dataclasses
import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest
import torch
from torch import nn

import convzoo
from convzoo.analysis.isolation import private_copy
from convzoo.cli import main
from tests.sacred import fingerprint

ROOT = Path(__file__).resolve().parents[1]


class Counted(nn.Module):
    """A forward that counts its calls under a lock held in a plain dict."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.state = {"lock": threading.Lock(), "calls": 0}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.state["lock"]:
            self.state["calls"] += 1
        return self.conv(x)


def test_a_lock_and_a_counter_beside_it_are_the_copys_own() -> None:
    model = Counted()
    lock = model.state["lock"]
    before = fingerprint(model)
    assert convzoo.analyze(model, (3, 8, 8)).totals.macs == 4 * 27 * 36
    assert model.state["calls"] == 0 and model.state["lock"] is lock
    assert fingerprint(model) == before
    clone = private_copy(model)
    clone(torch.empty(1, 3, 8, 8, device="meta"))
    assert clone.state["calls"] == 1 and model.state["calls"] == 0
    assert type(clone.state["lock"]) is type(lock) and clone.state["lock"] is not lock
    # a lock the user holds is no lock of the copy's: the analysis does not wait for it
    done = threading.Event()
    with lock:
        worker = threading.Thread(
            target=lambda: (convzoo.analyze(model, (3, 8, 8)), done.set()), daemon=True
        )
        worker.start()
        worker.join(timeout=60)
    assert done.is_set() and fingerprint(model) == before


@dataclasses.dataclass
class Stats:
    lock: threading.Lock
    seen: list[tuple[int, ...]]


class Tally:
    """A plain object outside the model, reached from it by a weak reference."""

    def __init__(self) -> None:
        self.n = 0


OUTSIDE = Tally()


class Holders(nn.Module):
    """Uncopyable leaves (locks) deep in containers and objects, and the handles deepcopy
    shares: a builtin method bound to a list, weak references (to the module itself and
    to an object outside the model); the forward mutates through each."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.nested = {
            "runs": [{"lock": threading.RLock(), "n": 0}],
            "pair": (threading.Lock(), []),
        }
        self.stats = Stats(threading.Lock(), [])
        self.ready = threading.Event()  # a Condition over a Lock, inside a plain object
        self.log: list[int] = []
        self.push = self.log.append
        self.me = weakref.ref(self)
        self.outside = weakref.ref(OUTSIDE)
        self.hits = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        run = self.nested["runs"][0]
        with run["lock"], self.stats.lock:
            run["n"] += 1
            self.nested["pair"][1].append(1)
            self.stats.seen.append(tuple(x.shape))
        self.ready.set()
        self.push(1)
        self.me().hits += 1
        self.outside().n += 1
        return self.conv(x)


def test_containers_holding_uncopyable_leaves_are_copied_not_shared() -> None:
    model = Holders()
    before = fingerprint(model)
    for train in (False, True):
        assert convzoo.analyze(model, (3, 4, 4), train=train).totals.macs == 12 * 16
    assert fingerprint(model) == before and OUTSIDE.n == 0
    clone = private_copy(model)
    clone(torch.empty(1, 3, 4, 4, device="meta"))
    assert clone.nested["runs"][0]["n"] == 1 and clone.nested["pair"][1] == [1]
    assert clone.stats.seen == [(1, 3, 4, 4)] and clone.ready.is_set()
    assert clone.log == [1] and clone.hits == 1 and clone.outside().n == 1
    assert clone.me() is clone and clone.outside() is not OUTSIDE
    assert fingerprint(model) == before and OUTSIDE.n == 0


class Holds(nn.Module):
    """A module with ``value`` placed at ``where`` (an attribute path under ``block``)."""

    def __init__(self, value: object) -> None:
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 1))
        self.block.state = {"ok": [threading.Lock()], "bad": [{"it": value}]}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: open(__file__), "_io.TextIOWrapper"),  # noqa: SIM115 - closed below
        (lambda: (i for i in range(3)), "generator"),
        (threading.local, "_thread._local"),
    ],
)
def test_an_uncopyable_leaf_is_refused_in_one_line_naming_it(make, kind: str) -> None:
    value = make()
    model = Holds(value)
    before = fingerprint(model)
    with pytest.raises(convzoo.ConvZooError) as info:
        convzoo.analyze(model, (3, 4, 4))
    message = str(info.value)
    assert message.startswith(f"model.block.state['bad'][0]['it']: cannot copy a {kind} (")
    assert "\n" not in message and len(message) < 400
    assert fingerprint(model) == before and model.block.state["bad"][0]["it"] is value
    if kind == "_io.TextIOWrapper":
        assert not value.closed
        value.close()


HOLDER = """
from torch import nn


class Holder(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 1))
        self.block.state = {{"it": {value}}}

    def forward(self, x):
        return self.block(x)
"""


@pytest.mark.parametrize(
    ("process", "value", "kind"),
    [
        (False, "(i for i in range(3))", "generator"),
        pytest.param(True, "open(__file__)", "_io.TextIOWrapper", marks=pytest.mark.slow),
    ],
)
def test_the_cli_refuses_an_uncopyable_attribute_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], process: bool, value: str, kind: str
) -> None:
    path = tmp_path / "holder.py"
    path.write_text(HOLDER.format(value=value))
    argv = ["report", f"{path}:Holder", "--input", "3x8x8"]
    if process:  # the way a user runs it
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "convzoo", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        code, out, err = done.returncode, done.stdout, done.stderr
    else:
        code = main(argv)
        out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith(f"convzoo: error: model.block.state['it']: cannot copy a {kind} (")
    assert err.count("\n") == 1 and not out


def test_a_thread_running_the_model_sees_only_its_own_calls() -> None:
    """While analyses run, the user's own forward in another thread counts exactly its
    calls, one by one: no analysis's forward ever reaches the user's counter."""
    model = Counted().eval()
    convzoo.analyze(model, (3, 8, 8))  # the first analysis in a process sets things up
    x = torch.randn(1, 3, 8, 8)
    seen: list[int] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def infer() -> None:
        try:
            with torch.no_grad():
                while not stop.is_set() or len(seen) < 20:
                    model(x)
                    seen.append(model.state["calls"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    worker = threading.Thread(target=infer)
    worker.start()
    try:
        while not seen and worker.is_alive():  # the user's forward is under way
            time.sleep(0.001)
        for _ in range(5):
            convzoo.analyze(model, (3, 8, 8))
    finally:
        stop.set()
        worker.join()
    assert not errors
    assert seen == list(range(1, len(seen) + 1)) and model.state["calls"] == len(seen)
    assert not model.state["lock"].locked()


def test_the_path_names_attributes_keys_and_items_on_the_way() -> None:
    pair = collections.namedtuple("pair", "a b")
    model = nn.Sequential(nn.Conv2d(3, 3, 1))
    model[0].cfg = Stats(threading.Lock(), [pair(1, {"g": (i for i in range(2))})])
    with pytest.raises(convzoo.ConvZooError, match=r"^model\.0\.cfg\.seen\[0\]\[1\]\['g'\]: "):
        private_copy(model)
