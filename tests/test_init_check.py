"""``convzoo.init_check`` (issue 24): symmetric, dead and saturated units and the signal
through depth, each against a reference the test computes itself (a real SGD step, the
activations of a plain forward, batch norm's definition)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from convzoo.builder import build
from convzoo.config import INITS, ConfigError
from convzoo.errors import ConvZooError
from convzoo.initcheck.check import init_check
from convzoo.initcheck.findings import SATURATION
from convzoo.initcheck.inits import INITS as INIT_FUNCTIONS
from convzoo.real import SEED, materialize, seeded_rng
from convzoo.targets import packaged_configs, resolve
from tests.sacred import fingerprint


def constant_net() -> nn.Sequential:
    """conv1 all zero, then a sigmoid and a conv whose weights are all 0.1: conv1's channels
    read the same input with the same weights and feed conv2 the same way."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid(), nn.Conv2d(4, 2, 3))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[2].weight.fill_(0.1)
        net[2].bias.zero_()
    return net


def test_a_zero_conv_is_one_symmetric_group_and_one_sgd_step_keeps_it() -> None:
    net = constant_net()
    report = init_check(net, (3, 8, 8), batch_size=4)
    (found,) = report.finding("symmetric")
    assert (found.layer, found.units, found.total) == ("0", 4, 4)
    assert "1 group" in found.detail and "(4)" in found.detail
    # the reference: one real SGD step on the model, a loss of our own
    torch.manual_seed(1)
    x, target = torch.randn(4, 3, 8, 8), torch.randn(4, 2, 4, 4)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
    ((net(x) - target) ** 2).mean().backward()
    grad = net[0].weight.grad
    assert grad is not None and grad.abs().max() > 0  # the step moves the weights...
    optimizer.step()
    w, b = net[0].weight.detach(), net[0].bias.detach()
    assert w.abs().max() > 0
    for c in range(1, 4):  # ...and leaves every channel identical
        assert torch.equal(w[c], w[0]) and torch.equal(b[c], b[0])


def test_identical_output_units_are_separated_by_their_targets() -> None:
    report = init_check(constant_net(), (3, 8, 8), batch_size=4)
    (found,) = report.finding("separated")
    assert found.layer == "2" and found.units == 2  # the output layer: a target per unit


def identical(report: object) -> dict[str, tuple[int, str]]:
    return {
        f.layer: (f.units, f.detail)
        for f in report.findings  # type: ignore[attr-defined]
        if f.kind in ("symmetric", "separated")
    }


def test_only_units_reading_the_same_inputs_can_be_symmetric() -> None:
    grouped = nn.Conv2d(4, 4, 3, groups=2)
    nn.init.constant_(grouped.weight, 0.5)
    nn.init.constant_(grouped.bias, 0.5)
    report = init_check(grouped, (4, 6, 6), batch_size=2)
    assert identical(report) == {"": (4, "channels in 2 groups of identical weights (2, 2)")}
    depthwise = nn.Conv2d(4, 4, 3, groups=4)  # each channel reads its own input
    nn.init.constant_(depthwise.weight, 0.5)
    assert identical(init_check(depthwise, (4, 6, 6), batch_size=2)) == {}


def test_a_transposed_convs_units_are_its_weights_columns_group_by_group() -> None:
    up = nn.ConvTranspose2d(4, 6, 3, groups=2)  # weight: Tensor[4, 3, 3, 3]
    with torch.no_grad():
        up.weight[0:2, 2] = up.weight[0:2, 0]  # output 2 = output 0 (group 0)
        up.bias[2] = up.bias[0]
        up.weight[2:4, 1] = up.weight[0:2, 1]  # output 4 has output 1's weights, other inputs
        up.bias[4] = up.bias[1]
    report = init_check(up, (4, 5, 5), batch_size=2)
    assert identical(report) == {"": (2, "channels in 1 group of identical weights (2)")}


def test_all_ones_is_symmetric_and_saturates_a_sigmoid() -> None:
    mlp = nn.Sequential(*[m for _ in range(3) for m in (nn.Linear(32, 32), nn.Sigmoid())])
    report = init_check(nn.Sequential(mlp, nn.Linear(32, 2)), (32,), init="ones")
    assert [f.layer for f in report.finding("symmetric")] == ["0.0", "0.2", "0.4"]
    saturated = report.finding("saturated")
    assert saturated and saturated[-1].layer == "0.5" and saturated[-1].units == 32
    # the reference: the sigmoid's own outputs, computed here
    ones = copy.deepcopy(mlp)
    for m in ones.modules():
        if isinstance(m, nn.Linear):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    out = ones(torch.randn(8, 32))
    assert ((out < SATURATION) | (out > 1 - SATURATION)).all()


def test_dead_relus_are_those_zero_for_the_whole_batch() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 4, 3), nn.ReLU())
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # every pre-activation of the first conv is negative
    (found,) = init_check(net, (3, 8, 8)).finding("dead")
    assert (found.layer, found.units, found.total) == ("1", 8, 8)


def test_in_place_and_functional_activations_count_too() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu_(self.conv(x) - 1e3)

    (found,) = init_check(Net(), (3, 6, 6), batch_size=2).finding("dead")
    assert found.layer == "" and found.units == 4


def bn_net() -> nn.Sequential:
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU())
    with torch.no_grad():
        net[0].weight.mul_(10)  # a conv output far from unit variance
    return net


def test_batch_norm_normalises_in_train_mode_and_passes_the_signal_in_eval_mode() -> None:
    train = init_check(bn_net(), (3, 8, 8), batch_size=8, train=True)
    evaluated = init_check(bn_net(), (3, 8, 8), batch_size=8, train=False)
    conv, norm = train.layers
    assert conv.variance > 10 and norm.variance == pytest.approx(1, rel=1e-3)
    assert norm.sq_mean < 1e-10  # the batch's own statistics: mean 0, variance 1
    conv, norm = evaluated.layers  # running statistics 0 and 1: x / sqrt(1 + eps)
    assert norm.variance == pytest.approx(conv.variance / (1 + 1e-5), rel=1e-4)
    assert norm.sq_mean == pytest.approx(conv.sq_mean / (1 + 1e-5), rel=1e-4)
    assert train.mode == "train" and "batch's own mean" in train.to_text()
    assert evaluated.mode == "eval" and "running statistics" in evaluated.to_text()


def test_the_users_model_is_never_changed() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.ReLU())
    net[0].bias.requires_grad_(False)
    net.eval()
    before = fingerprint(net)
    state = {k: v.clone() for k, v in net.state_dict().items()}
    flags = [(p.requires_grad, p.grad) for p in net.parameters()]
    for init in (None, "zeros", "kaiming"):
        init_check(net, (3, 8, 8), init=init, train=True)
    assert fingerprint(net) == before  # the global random generator too
    for key, value in net.state_dict().items():
        assert value.dtype == state[key].dtype and torch.equal(value, state[key]), key
    assert [(p.requires_grad, p.grad) for p in net.parameters()] == flags
    assert not any(m.training for m in net.modules())


def test_the_same_model_input_and_seed_give_the_same_report() -> None:
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout(0.5), nn.Tanh(), nn.Conv2d(4, 2, 3))
    first = init_check(net, (3, 8, 8)).to_dict()
    assert init_check(net, (3, 8, 8)).to_dict() == first
    assert init_check(net, (3, 8, 8), seed=1).to_dict() != first


def test_every_config_init_has_a_function() -> None:
    assert tuple(INIT_FUNCTIONS) == INITS


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"init": "zero"}, ["unknown init", "zeros"]),
        ({"batch_size": 0}, ["batch_size"]),
    ],
)
def test_bad_arguments_are_one_line(kwargs: dict, words: list[str]) -> None:
    with pytest.raises(ConvZooError) as info:
        init_check(nn.Linear(2, 2), (2,), **kwargs)
    assert all(w in str(info.value) for w in words) and "\n" not in str(info.value)


def test_signal_and_gradient_norms_are_those_of_a_plain_step() -> None:
    """The reference: the same seeded batch and cotangent through the model itself, the
    statistics as ``timm.utils.model`` defines them (population variance here)."""
    net = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 36, 5))
    report = init_check(net, (3, 8, 8), batch_size=4)
    model = copy.deepcopy(net)
    with seeded_rng(SEED):
        x = torch.randn(4, 3, 8, 8)
        outputs: list[torch.Tensor] = []
        hooks = [
            model[i].register_forward_hook(lambda m, a, o: outputs.append(o.detach()))
            for i in (0, 3)
        ]
        out = model(x)
        (out * torch.randn(out.shape)).sum().backward()
    for hook in hooks:
        hook.remove()
    for row, o, layer in zip(report.layers, outputs, (model[0], model[3]), strict=True):
        dims = [0, *range(2, o.dim())]
        assert row.sq_mean == pytest.approx(float(o.mean(dims).pow(2).mean()), rel=1e-5)
        assert row.variance == pytest.approx(float(o.var(dims, correction=0).mean()), rel=1e-5)
        assert row.grad_norm == pytest.approx(float(layer.weight.grad.norm()), rel=1e-5)
    assert report.grad_ratio == pytest.approx(
        report.layers[0].grad_norm / report.layers[1].grad_norm
    )


SEEDS = {"seed_init_zero", "seed_init_ones", "seed_deep_plain", "seed_deep_residual"}
AT_64 = {"mobilenet_v1", "resnet18", "resnet50", "vgg16"}  # 224 by default: quicker at 64


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(packaged_configs()) - SEEDS))
def test_kaiming_init_flags_nothing_on_the_shipped_configs(name: str) -> None:
    target = resolve(name, ((3, 64, 64),) if name in AT_64 else ())
    report = init_check(target.model, target.input_size[0], batch_size=4, init="kaiming")
    assert report.findings == [], [f.line() for f in report.findings]


@pytest.mark.slow
def test_a_deep_plain_sigmoid_mlp_vanishes_and_its_residual_twin_does_not() -> None:
    plain = init_check(build("seed_deep_plain", meta=True))
    twin = init_check(build("seed_deep_residual", meta=True))
    linears = [row for row in plain.layers if row.type == "Linear"]
    assert len(linears) == 51 and len(twin.layers) == 51  # 50 layers and the head each
    assert plain.grad_ratio is not None and plain.grad_ratio < 1e-6
    assert [f.kind for f in plain.findings] == ["vanishing"]
    assert twin.grad_ratio is not None and twin.grad_ratio > 1e-6 and not twin.findings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "kinds"),
    [
        ("seed_init_zero", ["symmetric", "dead", "symmetric", "dead", "separated"]),
        ("seed_init_ones", ["symmetric", "symmetric", "symmetric", "saturated", "separated"]),
    ],
)
def test_the_seed_configs_show_their_failure_and_kaiming_undoes_it(
    name: str, kinds: list[str]
) -> None:
    model = build(name, meta=True)
    assert [f.kind for f in init_check(model).findings if f.layer] == kinds
    assert init_check(model, init="kaiming").findings == []


def test_a_configs_init_sets_its_real_weights_and_a_bad_one_is_located() -> None:
    config = {"input": [4], "init": "ones", "layers": [{"type": "linear", "out_features": 3}]}
    real = build(config)
    twin = materialize(build(config, meta=True))  # the real twin of a meta build too
    for model in (real, twin):
        assert torch.equal(model[0].weight, torch.ones(3, 4))
        assert torch.equal(model[0].bias, torch.zeros(3))
    with pytest.raises(
        ConfigError, match=r"init: expected one of zeros, .*\(did you mean 'zeros'\?\)"
    ):
        build({**config, "init": "zero"})
