"""Work a forward triggers outside the model's arithmetic, and dtypes no real kernel mixes
(issue 21).

- An op that takes and returns no tensor (``torchvision::_cuda_version() -> int``) is free;
  ops a Python import runs while the forward imports a module (torchvision, on the first
  call of ``deformable``) are the import's: not counted, not listed, ``complete`` stays True.
- Operands a real CPU kernel refuses to mix (a float16 convolution feeding a float64
  ``Linear``) fail the analysis in one line naming the layer, as the real forward fails;
  every entry of :data:`~convzoo.analysis.dtype_conflicts.SAME_DTYPE` is checked against the
  real kernel here.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import torch
import torchvision  # noqa: F401  (registers torchvision::deform_conv2d)
from torch import nn

from convzoo.analysis import ops
from convzoo.analysis.analyzer import AnalysisError, analyze
from convzoo.analysis.dtype_conflicts import SAME_DTYPE
from convzoo.analysis.ops.table import NO_TENSOR_REASON
from tests.helpers import cli, cli_env

aten = torch.ops.aten


# -- ops outside the model's arithmetic -------------------------------------------------
def test_ops_that_touch_no_tensor_are_free() -> None:
    for op in (torch.ops.torchvision._cuda_version.default, aten.can_cast.default):
        assert ops.classify(op) == "free"
        assert ops.TABLE.resolve(op).free == NO_TENSOR_REASON
    # packed weights (a TorchScript class) may hold tensors: not assumed free
    assert ops.classify(torch.ops.quantized.conv2d_stride.default) == "uncounted"


def _module_file(tmp_path: Path, body: str) -> str:
    """A module no one has imported yet, on the path: its name."""
    name = f"convzoo_edge_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    return name


class ImportsOnFirstCall(nn.Module):
    """Imports a module inside its forward, as ``deformable`` imports torchvision."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        importlib.import_module(self.name)
        return self.conv(x)


def test_an_import_inside_the_forward_counts_nothing(tmp_path: Path) -> None:
    """The import makes a real tensor and runs an op convzoo cannot count (a determinant):
    neither is the model's; the report is the one of a second, import-free run."""
    name = _module_file(
        tmp_path, "import torch\nVALUE = torch.linalg.det(torch.eye(3, dtype=torch.float64))\n"
    )
    assert ops.classify(aten._linalg_det.default) == "uncounted"
    try:
        model = ImportsOnFirstCall(name)
        first = analyze(model, (3, 8, 8))
        assert name in sys.modules
        again = analyze(model, (3, 8, 8))
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
    assert first.complete and first.uncounted_ops == []
    assert first.to_dict() == again.to_dict()
    assert [op.op for op in first.operators] == ["convolution"]


def test_an_analysis_run_by_an_import_still_counts(tmp_path: Path) -> None:
    """An import that runs an analysis (a script imported as a module): the model's own
    ops are still the model's, its uncounted determinant included."""
    name = _module_file(
        tmp_path,
        """
        import torch
        from convzoo import analyze

        class Det(torch.nn.Module):
            def forward(self, x):
                return torch.linalg.det(x @ x.transpose(-1, -2) + torch.eye(4, device=x.device))

        REPORT = analyze(Det(), (2, 4, 4))
        """,
    )
    try:
        report = importlib.import_module(name).REPORT
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
    assert not report.complete
    assert [u.op for u in report.uncounted_ops] == ["_linalg_det"]


@pytest.mark.slow
def test_deformable_is_complete_in_a_fresh_process() -> None:
    """The first analysis in a process imports torchvision inside the layer's forward."""
    code = (
        "import sys, convzoo\n"
        "assert 'torchvision' not in sys.modules\n"
        "layer = convzoo.create('deformable', in_channels=3, out_channels=4, kernel_size=3)\n"
        "r = convzoo.analyze(layer, (3, 16, 16))\n"
        "assert 'torchvision' in sys.modules\n"
        "print(r.complete, sorted(o.op for o in r.operators))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "True ['convolution', 'convolution', 'deform_conv2d', 'mul', 'sigmoid']\n"


# -- dtypes a real kernel refuses to mix ------------------------------------------------
def _t(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


def _conv(input, weight) -> None:  # noqa: ANN001
    aten.convolution(input, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)


def _conv_(input, weight) -> None:  # noqa: ANN001
    aten._convolution(
        input, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, False, False, True, True
    )


def _deform(input, weight, offset, mask) -> None:  # noqa: ANN001
    torch.ops.torchvision.deform_conv2d(
        input, weight, offset, mask, _t(3), 1, 1, 0, 0, 1, 1, 1, 1, True
    )


# each op with operands of compatible shapes, by argument name, and how to call it
CALLS = {
    "aten::mm": (aten.mm, {"self": (2, 3), "mat2": (3, 4)}),
    "aten::bmm": (aten.bmm, {"self": (1, 2, 3), "mat2": (1, 3, 4)}),
    "aten::addmm": (aten.addmm, {"self": (4,), "mat1": (2, 3), "mat2": (3, 4)}),
    "aten::_addmm_activation": (
        aten._addmm_activation,
        {"self": (4,), "mat1": (2, 3), "mat2": (3, 4)},
    ),
    "aten::baddbmm": (aten.baddbmm, {"self": (4,), "batch1": (1, 2, 3), "batch2": (1, 3, 4)}),
    "aten::addbmm": (aten.addbmm, {"self": (4,), "batch1": (1, 2, 3), "batch2": (1, 3, 4)}),
    "aten::addmv": (aten.addmv, {"self": (2,), "mat": (2, 3), "vec": (3,)}),
    "aten::mv": (aten.mv, {"self": (2, 3), "vec": (3,)}),
    "aten::dot": (aten.dot, {"self": (3,), "tensor": (3,)}),
    "aten::convolution": (_conv, {"input": (1, 2, 5, 5), "weight": (3, 2, 3, 3)}),
    "aten::_convolution": (_conv_, {"input": (1, 2, 5, 5), "weight": (3, 2, 3, 3)}),
    "torchvision::deform_conv2d": (
        _deform,
        {
            "input": (1, 2, 5, 5),
            "weight": (3, 2, 3, 3),
            "offset": (1, 18, 3, 3),
            "mask": (1, 9, 3, 3),
        },
    ),
}


def test_every_op_has_a_call() -> None:
    assert sorted(CALLS) == sorted(SAME_DTYPE)
    for name, (_, shapes) in CALLS.items():
        assert tuple(shapes) == SAME_DTYPE[name]


@pytest.mark.parametrize("name", sorted(SAME_DTYPE))
def test_the_real_kernel_refuses_each_listed_operand(name: str) -> None:
    """Same dtypes run; any one listed operand in float64 is refused by the CPU kernel."""
    call, shapes = CALLS[name]
    call(*(_t(*s) for s in shapes.values()))
    for odd in shapes:
        args = [
            _t(*s, dtype=torch.float64 if n == odd else torch.float32) for n, s in shapes.items()
        ]
        with pytest.raises(RuntimeError):
            call(*args)


class Mixed(nn.Module):
    """A float16 convolution feeding a float64 ``Linear``: no real input runs through it."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3).half()
        self.flat = nn.Flatten()
        self.fc = nn.Linear(144, 5).double()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flat(self.conv(x)))


MIXED_ERROR = (
    "model fails for input 1x3x8x8 float16 in layer 'fc': addmm mixes dtypes (self float64, "
    "mat1 float16, mat2 float64), which a real forward refuses: cast the model (or its inputs) "
    "to one dtype"
)


def test_mixed_dtypes_fail_in_one_line_naming_the_layer() -> None:
    with pytest.raises(AnalysisError) as caught:
        analyze(Mixed(), (3, 8, 8))
    assert str(caught.value) == MIXED_ERROR
    with pytest.raises(RuntimeError, match="same dtype"):  # the real forward
        Mixed()(torch.randn(1, 3, 8, 8, dtype=torch.float16))


def test_meta_and_real_forwards_refuse_alike() -> None:
    """The same line whether the forward runs on meta or real tensors (with a bias,
    ``conv2d`` itself refuses it, above the kernels, on meta tensors too)."""
    for bias, reason in [
        (False, "convolution mixes dtypes (input float64, weight float32)"),
        (True, "Input type (double) and bias type (float) should be the same"),
    ]:
        model = nn.Sequential(nn.Conv2d(3, 4, 3).double(), nn.Conv2d(4, 2, 1, bias=bias))
        messages = set()
        for meta in (True, False):
            with pytest.raises(AnalysisError) as caught:
                analyze(model, (3, 6, 6), meta=meta)
            messages.add(str(caught.value))
        assert len(messages) == 1
        assert f"1x3x6x6 float64 in layer '1': {reason}" in messages.pop()


def test_promoting_ops_run() -> None:
    """What a real forward runs is analysed: ``add`` promotes float32 and float64."""

    class Promotes(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.scale = nn.Parameter(torch.ones(1, dtype=torch.float64))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) + self.scale

    model, x = Promotes(), torch.randn(1, 3, 8, 8)
    assert model(x).dtype == torch.float64
    report = analyze(model, (x,))
    assert report.complete and report.notes == []


@pytest.mark.slow
def test_cli_mixed_dtypes_exit_2(tmp_path: Path) -> None:
    """The command line casts the model's parameters to ``--dtype``; a forward that casts an
    activation itself still meets a weight of another dtype."""
    path = tmp_path / "mixed.py"
    path.write_text(
        "from torch import nn\n\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 4, 3)\n"
        "        self.fc = nn.Linear(144, 5)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(self.conv(x).flatten(1).double())\n"
    )
    done = cli("report", f"{path}:Net", "--input", "3x8x8")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "convzoo: error: model fails for input 1x3x8x8 in layer 'fc': addmm mixes "
        "dtypes (self float32, mat1 float64, mat2 float32), which a real forward refuses: cast "
        "the model (or its inputs) to one dtype\n"
    )
