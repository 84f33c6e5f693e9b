"""Every shipped config builds, runs, and has the parameter count computed independently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torchvision

import convzoo

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def mobilenet_v1_params() -> int:
    """Howard et al. 2017, Table 1, counted by hand (BN has 2 parameters per channel)."""
    plan = [
        (32, 64, 1),
        (64, 128, 2),
        (128, 128, 1),
        (128, 256, 2),
        (256, 256, 1),
        (256, 512, 2),
        *[(512, 512, 1)] * 5,
        (512, 1024, 2),
        (1024, 1024, 1),
    ]
    stem = 3 * 32 * 9 + 2 * 32
    blocks = sum(9 * c + 2 * c + c * o + 2 * o for c, o, _ in plan)
    return stem + blocks + 1024 * 1000 + 1000


HAND_COUNTS = {
    "seed_64x64_5x5": 2 * 3 * 5 * 5 + 2,
    "seed_7x7_alternatives": 7 * 7 + 3 * 3 * 3 + (7 + 7),
    "mobilenet_v1": mobilenet_v1_params(),  # 4,231,976 = Keras MobileNet trainable params
    "capsnet_mnist": 256 * 81 + 256 + 256 * 256 * 81 + 256 + 1152 * 10 * 16 * 8,
    # conv_norm_act x3 (no conv bias, 2 BN params per channel), two 2x2 transposed, a 1x1
    "encoder_decoder": (3 * 16 * 9 + 32)
    + (16 * 32 * 9 + 64)
    + (32 * 64 * 9 + 128)
    + (64 * 32 * 4 + 32)
    + (32 * 16 * 4 + 16)
    + (16 * 5 + 5),
}
TORCHVISION = {"vgg16": "vgg16", "resnet18": "resnet18", "resnet50": "resnet50"}


SLOW_CONFIGS = {"vgg16", "resnet50"}  # resnet50 also runs (slow) in the torchvision test below


def all_configs() -> list[Path]:
    return sorted(CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, id=p.stem, marks=pytest.mark.slow if p.stem in SLOW_CONFIGS else ())
        for p in all_configs()
    ],
)
def test_config_builds_and_runs(path: Path) -> None:
    model = convzoo.build(path)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, *model.input_size))
    assert out.shape[0] == 2 and torch.isfinite(out).all()
    assert path.read_text().startswith("#"), "each config cites its source in a comment"


@pytest.mark.parametrize("name", sorted(HAND_COUNTS))
def test_params_match_hand_count(name: str) -> None:
    assert n_params(convzoo.build(CONFIGS / f"{name}.yaml")) == HAND_COUNTS[name]


@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_params_match_torchvision(name: str) -> None:
    with torch.device("meta"):  # counting needs shapes only
        reference = getattr(torchvision.models, TORCHVISION[name])(weights=None)
    assert n_params(convzoo.build(CONFIGS / f"{name}.yaml", meta=True)) == n_params(reference)


@pytest.mark.parametrize(
    "name",  # resnet50's bottlenecks: test_blocks checks each against torchvision's, fast
    ["resnet18", pytest.param("resnet50", marks=pytest.mark.slow)],
)
def test_resnet_configs_compute_torchvision_resnets(name: str) -> None:
    """Copy torchvision's weights in order: the outputs agree, so the graphs are the same."""
    ours = convzoo.build(CONFIGS / f"{name}.yaml", input_size=(3, 64, 64)).eval()
    ref = getattr(torchvision.models, name)(weights=None).eval()
    with torch.no_grad():
        for mine, theirs in zip(
            [*ours.parameters(), *ours.buffers()], [*ref.parameters(), *ref.buffers()], strict=True
        ):
            assert mine.shape == theirs.shape
            mine.copy_(
                theirs + 0.01 * torch.rand_like(theirs.float()).to(theirs.dtype)
                if theirs.is_floating_point()
                else theirs
            )
            theirs.copy_(mine)
        x = torch.randn(2, 3, 64, 64)
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


def test_capsnet_mnist_shapes() -> None:
    model = convzoo.build(CONFIGS / "capsnet_mnist.yaml")
    assert model.primary_caps(model.relu(model.conv1(torch.randn(1, 1, 28, 28)))).shape == (
        1,
        1152,
        8,
    )
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)


def test_every_conv_uses_every_registered_layer() -> None:
    text = (CONFIGS / "every_conv.yaml").read_text()
    used = set(re.findall(r"type: (\w+)", text))
    assert used == set(convzoo.LAYERS.names()), set(convzoo.LAYERS.names()) ^ used
