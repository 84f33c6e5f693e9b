"""Models beyond plain classifiers, each counted exactly against torch's FlopCounterMode on
a real forward (FlopCounterMode counts convolutions, matmuls and attention: MACs =
FLOPs / 2) or a hand formula, and left unchanged."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import convzoo
from tests.sacred import fingerprint

tv = pytest.importorskip("torchvision")
D, S = tv.models.detection, tv.models.segmentation
SMALL = dict(weights=None, weights_backbone=None, min_size=96, max_size=96)
FEW = dict(rpn_pre_nms_top_n_test=50, rpn_post_nms_top_n_test=20, box_detections_per_img=5)


def fcm_macs(model: nn.Module, *args) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*args)
    return counter.get_total_flops() // 2


def _detectors() -> list:
    fast = [
        ("fasterrcnn_mobilenet", lambda: D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL, **FEW)),
    ]
    slow = [
        ("ssdlite", lambda: D.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)),
        ("fasterrcnn_resnet50", lambda: D.fasterrcnn_resnet50_fpn(**SMALL, **FEW)),
        ("maskrcnn", lambda: D.maskrcnn_resnet50_fpn(**SMALL, **FEW)),
        ("keypointrcnn", lambda: D.keypointrcnn_resnet50_fpn(**SMALL, **FEW)),
        ("retinanet", lambda: D.retinanet_resnet50_fpn(**SMALL)),
        ("fcos", lambda: D.fcos_resnet50_fpn(**SMALL)),
        ("ssd300", lambda: D.ssd300_vgg16(weights=None, weights_backbone=None)),
    ]
    return [pytest.param(b, id=n) for n, b in fast] + [
        pytest.param(b, id=n, marks=pytest.mark.slow) for n, b in slow
    ]


@pytest.mark.parametrize("build", _detectors())
def test_detection_models_take_lists_of_images_and_count_exactly(build) -> None:
    """Detectors cannot run on meta tensors (nms and box selection depend on values): the
    clean fallback runs on a private real copy and counts what FlopCounterMode counts."""
    model = build().eval()
    images = [torch.rand(3, 80, 96), torch.rand(3, 96, 72)]
    before = fingerprint(model)
    report = convzoo.analyze(model, (images,), receptive_fields=False)
    assert fingerprint(model) == before
    assert any("real tensors" in n for n in report.notes)
    assert report.complete, report.uncounted_ops
    assert report.totals.macs == fcm_macs(model, images) > 0
    model(images)  # the user's model still works


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(
            lambda: S.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None), id="lraspp"
        ),
        pytest.param(
            lambda: S.deeplabv3_mobilenet_v3_large(
                weights=None, weights_backbone=None, aux_loss=True
            ),
            id="deeplabv3",
        ),
        pytest.param(
            lambda: S.fcn_resnet50(weights=None, weights_backbone=None, aux_loss=True),
            id="fcn",
            marks=pytest.mark.slow,
        ),
    ],
)
def test_segmentation_models_run_on_meta_and_count_exactly(build) -> None:
    model = build().eval()
    report = convzoo.analyze(model, (3, 64, 64))
    assert not report.notes or all("real tensors" not in n for n in report.notes)
    assert report.complete
    assert report.totals.macs == fcm_macs(model, torch.rand(1, 3, 64, 64))
    assert report.output_shape == [1, 21, 64, 64]


class Lister(nn.Module):
    """Takes a list of unbatched images, as torchvision's detectors do."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, images: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([self.conv(image).sum() for image in images])


def test_size_lists_make_unbatched_image_lists_for_any_model() -> None:
    by_size = convzoo.analyze(Lister(), [[(3, 8, 10), (3, 6, 6)]], receptive_fields=False)
    images = [torch.zeros(3, 8, 10), torch.zeros(3, 6, 6)]
    by_tensor = convzoo.analyze(Lister(), (images,), receptive_fields=False)
    assert by_size.input_shape == [[3, 8, 10], [3, 6, 6]]
    assert by_size.totals.macs == by_tensor.totals.macs == (6 * 8 + 4 * 4) * 4 * 27


@pytest.mark.slow  # the same plumbing on a detector (the fast detector test takes tensors)
def test_size_lists_make_unbatched_image_lists() -> None:
    model = D.fasterrcnn_mobilenet_v3_large_fpn(**SMALL, **FEW).eval()
    by_size = convzoo.analyze(model, [[(3, 80, 96)]], receptive_fields=False)
    by_tensor = convzoo.analyze(model, ([torch.zeros(3, 80, 96)],), receptive_fields=False)
    assert by_size.input_shape == [[3, 80, 96]]
    assert by_size.totals.macs == by_tensor.totals.macs > 0


class Encoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 2, 32, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.enc(x, src_key_padding_mask=mask)


def test_transformer_encoder_with_padding_mask_counts_dense() -> None:
    model = Encoder().eval()
    x = torch.randn(2, 5, 16)
    mask = torch.zeros(2, 5, dtype=torch.bool)
    mask[1, 3:] = True
    before = fingerprint(model)
    tokens, d, ff, heads = 10, 16, 32, 2
    per_layer = tokens * (3 * d * d + d * d + 2 * d * ff) + 2 * heads * 5 * 5 * 2 * (d // heads)
    for meta in (True, False):
        report = convzoo.analyze(model, [x, mask], meta=meta)
        assert report.totals.macs == 2 * per_layer
        assert any("counted dense" in n for n in report.notes)
    assert fingerprint(model) == before
    assert model.enc.use_nested_tensor  # the user's flag is untouched


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    ).eval()


@pytest.mark.parametrize("how", ["script", "trace"])
def test_torchscript_modules_are_counted(how: str) -> None:
    eager = small_cnn()
    x = torch.randn(1, 3, 16, 16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.script(eager) if how == "script" else torch.jit.trace(eager, x)
    before = fingerprint(scripted)
    report = convzoo.analyze(scripted, (3, 16, 16))
    assert fingerprint(scripted) == before
    assert report.totals.macs == convzoo.analyze(eager, (3, 16, 16)).totals.macs
    assert report.totals.macs == fcm_macs(scripted, x)
    assert report.totals.params == sum(p.numel() for p in eager.parameters())
    assert any("TorchScript" in n for n in report.notes)
    assert report.output_shape == [1, 4]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_models_in_any_dtype_run_on_meta(dtype: torch.dtype) -> None:
    model = small_cnn().to(dtype)
    report = convzoo.analyze(model, (3, 16, 16))
    assert not report.notes  # no spurious fallback
    size = torch.empty((), dtype=dtype).element_size()
    assert report.totals.param_bytes == report.totals.params * size
    assert report.layer("0").activation_bytes == 8 * 16 * 16 * size


def test_dtype_casts_model_and_example_tensors_alike() -> None:
    model = small_cnn()
    x = torch.randn(1, 3, 16, 16)
    for meta in (True, False):
        report = convzoo.analyze(model, [x], dtype=torch.float64, meta=meta)
        assert report.totals.param_bytes == report.totals.params * 8
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an int from 1 to 1,048,576"),
        ({"batch_size": True}, "batch_size must be an int from 1 to 1,048,576"),
        ({"batch_size": 2.0}, "batch_size must be an int from 1 to 1,048,576"),
        ({"dtype": "float16"}, "dtype must be a torch.dtype"),
        ({"max_memory": -1}, "max_memory must be a positive int"),
        ({"meta": "no"}, "meta must be True or False"),
    ],
)
def test_bad_options_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(convzoo.ConvZooError, match=message) as info:
        convzoo.analyze(small_cnn(), (3, 8, 8), **kwargs)
    assert "\n" not in str(info.value) and len(str(info.value)) < 200


def test_errors_never_embed_tensor_values() -> None:
    x = torch.randn(1, 5, 64, 64)  # wrong channel count
    with pytest.raises(convzoo.AnalysisError) as info:
        convzoo.analyze(small_cnn(), [x])
    text = str(info.value)
    assert "1x5x64x64" in text and "tensor(" not in text and len(text) < 500


class BranchesOnValues(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * 2 if y.sum() > 0 else y


def test_real_fallback_is_refused_above_the_memory_budget() -> None:
    model = BranchesOnValues()
    with pytest.raises(convzoo.ConvZooError, match=r"memory budget .* max_memory=") as info:
        convzoo.analyze(model, (3, 8192, 8192))  # 16 x 8192^2 floats = 4 GiB per output
    assert "\n" not in str(info.value)
    with pytest.raises(convzoo.ConvZooError, match="memory budget"):
        convzoo.analyze(model, (3, 256, 256), max_memory=2**20)  # 1 MiB: estimated from meta
    ok = convzoo.analyze(model, (3, 256, 256), max_memory=2**26)
    assert ok.totals.macs == 16 * 27 * 256 * 256


class BranchesFirst(BranchesOnValues):
    """Fails on meta at its first op, so only the running forward can see its size."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * 2 if x.sum() > 0 else x
        return self.conv(x).relu()


def test_real_fallback_is_stopped_while_running_above_the_budget() -> None:
    model = BranchesFirst()
    before = fingerprint(model)
    with pytest.raises(convzoo.AnalysisError, match=r"in layer 'conv': .*memory budget"):
        convzoo.analyze(model, (3, 256, 256), max_memory=3 * 2**20)  # input 0.75 MiB, conv 4
    assert fingerprint(model) == before
    assert convzoo.analyze(model, (3, 256, 256), max_memory=2**24).totals.macs > 0


@pytest.mark.slow
def test_timm_module_under_several_names_runs_on_meta() -> None:
    """timm's coat_lite registers one conv-position-encoding module under three names."""
    timm = pytest.importorskip("timm")
    model = timm.create_model("coat_lite_tiny", pretrained=False).eval()
    report = convzoo.analyze(model, (3, 224, 224), receptive_fields=False)
    assert not any("real tensors" in n for n in report.notes)
    first, *others = ["cpe1", "serial_blocks1.0.cpe", "serial_blocks1.1.cpe"]
    assert report.layer(first).calls == 2 and report.layer(first).macs > 0
    assert all(report.layer(n).alias_of == first and report.layer(n).macs == 0 for n in others)
    assert report.totals.macs == fcm_macs(model, torch.randn(1, 3, 224, 224))


@pytest.mark.parametrize(
    "name",
    [
        "quantized_shufflenet_v2_x0_5",
        pytest.param("quantized_mobilenet_v3_large", marks=pytest.mark.slow),
        pytest.param("quantized_googlenet", marks=pytest.mark.slow),
    ],
)
def test_quantized_models_count_what_their_float_twins_count(name: str) -> None:
    """int8 kernels (quantized::conv2d_relu, linear, add, ...) through their packed
    weights: one MAC per int8 multiply-add, so the totals equal the float model's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant = tv.models.get_model(name, weights=None, quantize=True).eval()
        float_ = tv.models.get_model(name, weights=None, quantize=False).eval()
    before = fingerprint(quant)
    q = convzoo.analyze(quant, (3, 64, 64), receptive_fields=False)
    assert fingerprint(quant) == before
    assert q.complete, q.uncounted_ops
    assert q.totals.macs == convzoo.analyze(float_, (3, 64, 64)).totals.macs > 0


def test_window_attention_field_is_unknown_with_its_reason_in_the_table() -> None:
    model = tv.models.swin_t().eval()
    report = convzoo.analyze(model, (3, 64, 64))
    table = report.to_table(depth=2)  # no crash rendering a field it cannot trace
    assert "unknown" in table
    assert any("field unknown" in n or "unknown" in n for n in report.notes)
    assert report.totals.macs == fcm_macs(model, torch.randn(1, 3, 64, 64))
