"""CLI targets (``convzoo.targets``): every form resolves, wrong ones say what is accepted,
torchvision and timm never touch the network and default to the input their weights expect.
"""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
import torch

from convzoo import analyze, targets, torchvision_models
from convzoo.cli import main
from convzoo.errors import ConvZooError

ROOT = Path(__file__).resolve().parents[1]
SOME_MODEL = "tests/data/some_model.py"


def net_macs(h: int, w: int, classes: int = 10) -> int:
    """tests/data/some_model.py's Net by hand: the 3x3 valid conv, then the linear layer."""
    return (h - 2) * (w - 2) * 8 * 3 * 3 * 3 + 8 * classes


def net_params(classes: int = 10) -> int:
    return 8 * 27 + 8 + 8 * classes + classes


class NetworkTouched(AssertionError):
    pass


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Any download raises: sockets, urllib, torch.hub (with an empty TORCH_HOME, so a
    builder that wants weights must try the network)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise NetworkTouched(f"network touched: {args[:2]}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)


def test_the_offline_guard_catches_a_backbone_download(offline: None) -> None:
    """The guard can fail: torchvision's own default (no weights_backbone=None) downloads."""
    import torchvision

    with pytest.raises(NetworkTouched):
        torchvision.models.get_model("fcn_resnet50", weights=None)


@pytest.mark.parametrize(
    "text", ["resnet18", "configs/resnet18.yaml", str(ROOT / "configs/resnet18.yaml")]
)
def test_configs_by_path_and_by_name(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    target = targets.resolve(text)
    assert target.name == "resnet18" and target.input_size == ((3, 224, 224),)
    assert sum(p.numel() for p in target.model.parameters()) == 11_689_512  # torchvision's


def test_packaged_configs_are_package_data() -> None:
    shipped = targets.packaged_configs()
    on_disk = {p.stem for p in (ROOT / "convzoo" / "configs").glob("*.yaml")}
    assert set(shipped) == on_disk and {"resnet18", "vgg16", "every_conv"} <= on_disk
    assert (ROOT / "configs").resolve() == (ROOT / "convzoo" / "configs").resolve()


@pytest.mark.parametrize(
    ("text", "kwargs", "classes"),
    [
        (f"{SOME_MODEL}:Net", None, 10),
        (f"{SOME_MODEL}:Net", {"num_classes": 3}, 3),
        (f"{SOME_MODEL}:make_net", {"num_classes": 5}, 5),
        (f"{SOME_MODEL}:net", None, 4),
        ("tests.data.some_model:make_net", None, 10),
    ],
)
def test_python_objects(
    text: str, kwargs: dict | None, classes: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    target = targets.resolve(text, ((3, 20, 24),), kwargs)
    report = analyze(target.model, target.input_size[0])
    assert report.totals.macs == net_macs(20, 24, classes)
    assert report.totals.params == net_params(classes)


def test_factory_input_size_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert targets.resolve(f"{SOME_MODEL}:make_net").input_size == ((3, 32, 32),)


ERRORS = [
    ("resnet81", {}, "did you mean resnet18"),
    ("nonsense", {}, "a target is one of: a config path (configs/resnet18.yaml)"),
    ("mynet.py", {}, "path/to/file.py:Net"),
    ("configs/resnet19.yaml", {}, "no config file 'configs/resnet19.yaml'"),
    (f"{SOME_MODEL}:Nett", {}, "no attribute 'Nett'; did you mean Net"),
    (f"{SOME_MODEL}:Net", {"num_clases": 3}, "unexpected keyword argument 'num_clases'"),
    (f"{SOME_MODEL}:net", {"num_classes": 3}, "module instance: --kwargs does not apply"),
    (f"{SOME_MODEL}:Net", None, "has no default input size: give one with --input"),
    ("tests/data/nowhere.py:Net", None, "no Python file"),
    ("no_such_pkg.models:net", None, "cannot import module 'no_such_pkg.models'"),
    ("json:dumps", {"obj": 1}, "returned a str, not an nn.Module"),
    ("torchvision:resnet1", None, "did you mean torchvision:resnet18"),
    ("resnet18", {"x": 1}, "--kwargs does not apply to configs"),
]


@pytest.mark.parametrize(("text", "kwargs", "message"), ERRORS)
def test_wrong_targets_say_what_is_accepted(
    text: str, kwargs: dict | None, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    with pytest.raises(ConvZooError) as err:
        targets.resolve(text, (), kwargs or None)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_file_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\nraise RuntimeError('boom\\nsecond line')\n")
    with pytest.raises(ConvZooError, match=r"cannot import .*bad.py'?: RuntimeError: boom$"):
        targets.resolve(f"{bad}:Net", ((3, 8, 8),))


@pytest.mark.parametrize("text", ['{"a": 1', "[1, 2]", "num_classes=3", "NaN-ish"])
def test_kwargs_must_be_a_json_object(text: str) -> None:
    with pytest.raises(ConvZooError, match="--kwargs must be a JSON object"):
        targets.parse_kwargs(text)


# torchvision: the default input of each task, checked against the GFLOPS torchvision
# documents for the weights (its "_ops" metadata, multiply-adds, measured independently).
DOCUMENTED = [
    ("resnet18", {}, ((3, 224, 224),)),
    ("swin_v2_t", {}, ((3, 256, 256),)),  # 5.94 at 256, not 4.94 at 224
    ("r3d_18", {}, ((3, 16, 112, 112),)),
    ("fcn_resnet50", {"aux_loss": True}, ((3, 520, 520),)),  # the weights carry the aux head
]


@pytest.mark.parametrize(("name", "kwargs", "size"), DOCUMENTED)
def test_torchvision_default_input_matches_the_documented_cost(
    name: str, kwargs: dict, size: tuple, offline: None
) -> None:
    target = targets.resolve(f"torchvision:{name}", (), kwargs)
    assert target.input_size == size
    macs = analyze(target.model, size[0], receptive_fields=False).totals.macs
    documented = torchvision_models.default_weights(name).meta["_ops"]
    assert macs / 1e9 == pytest.approx(documented, abs=0.0015)


@pytest.mark.parametrize(
    ("name", "size"),
    [
        ("ssdlite320_mobilenet_v3_large", ((3, 320, 320),)),
        ("fasterrcnn_mobilenet_v3_large_320_fpn", ((3, 320, 320),)),
        ("raft_small", ((3, 368, 768), (3, 368, 768))),
        ("lraspp_mobilenet_v3_large", ((3, 520, 520),)),
        ("quantized_mobilenet_v2", ((3, 224, 224),)),
    ],
)
def test_torchvision_tasks_build_offline(name: str, size: tuple, offline: None) -> None:
    target = targets.resolve(f"torchvision:{name}")
    assert target.input_size == size


class ListDetector(torch.nn.Module):
    """Takes a list of ``Tensor[C, H, W]`` images, as torchvision's detectors do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 3)

    def forward(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        assert isinstance(images, list)
        return [self.conv(image[None]).sum() for image in images]


def test_a_detector_takes_a_batch_as_its_list_of_images() -> None:
    """The adapted model gives, for a batch, what the original gives for its images."""
    plain, adapted = ListDetector(), ListDetector()
    adapted.load_state_dict(plain.state_dict())
    torchvision_models.takes_image_list(adapted)
    assert type(adapted).__name__ == "ListDetector" and isinstance(adapted, ListDetector)
    images = torch.rand(3, 3, 8, 10)
    assert torch.equal(torch.stack(adapted(images)), torch.stack(plain(list(images))))
    report = analyze(adapted, (3, 8, 10), batch_size=3)
    assert report.totals.macs == 3 * 6 * 8 * 2 * 27  # three images, each 6x8 outputs
    assert [row.name for row in report.layers] == ["", "conv"]


@pytest.mark.slow
def test_a_detector_default_input_matches_the_documented_cost(offline: None) -> None:
    """SSDlite on one 320x320 image, passed as its list: torchvision documents 0.583 GFLOPS."""
    name = "ssdlite320_mobilenet_v3_large"
    target = targets.resolve(f"torchvision:{name}")
    report = analyze(target.model, target.input_size[0], receptive_fields=False)
    documented = torchvision_models.default_weights(name).meta["_ops"]
    assert report.totals.macs / 1e9 == pytest.approx(documented, abs=0.0015)


@pytest.mark.slow
def test_every_torchvision_builder_resolves_offline(offline: None) -> None:
    """Every name in list_models() builds with no network and has a default input."""
    import torchvision

    for name in torchvision.models.list_models():
        target = targets.resolve(f"torchvision:{name}")
        assert target.input_size and all(len(s) in (3, 4) for s in target.input_size), name
        del target


def test_timm_target_offline(offline: None) -> None:
    timm = pytest.importorskip("timm")
    target = targets.resolve("timm:resnet18", (), {"num_classes": 7})
    assert target.input_size == ((3, 224, 224),)
    reference = timm.create_model("resnet18", pretrained=False, num_classes=7)
    assert sum(p.numel() for p in target.model.parameters()) == sum(
        p.numel() for p in reference.parameters()
    )
    # the input comes from the model's pretrained config: 240 for this EfficientNet-B1
    assert targets.resolve("timm:tf_efficientnet_b1").input_size == ((3, 240, 240),)
    # a pretrained tag selects its own config: this ResNet-18 recipe trained at 160
    assert targets.resolve("timm:resnet18.a3_in1k").input_size == ((3, 160, 160),)
    with pytest.raises(ConvZooError, match="did you mean timm:resnet18"):
        targets.resolve("timm:resnet1")


def test_cli_module_target_puts_the_working_directory_on_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pkg = tmp_path / "userpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "models.py").write_text((ROOT / SOME_MODEL).read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    argv = ["report", "userpkg.models:Net", "--kwargs", '{"num_classes": 2}', "--input", "3x9x9"]
    assert main([*argv, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["totals"]["macs"] == net_macs(9, 9, 2)
