"""A user's op rules (issue 19): a rule that would replace, shadow or be shadowed by another
(packet against overload, in either direction, by op object or by name) is refused unless
``replace=True``, and a user's cost rule that returns anything but a non-negative int (or
raises) stops the analysis with one line naming the rule and the op."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn

import convzoo
from convzoo.analysis import ops
from convzoo.errors import ConvZooError

aten = torch.ops.aten
CONV = nn.Conv2d(3, 4, 3)  # one aten::convolution.default call on (1, 3, 8, 8)


@pytest.fixture(autouse=True)
def table_kept() -> Iterator[None]:
    """The op table as it was before the test (built-in rules replaced by a test restored)."""
    table = ops.TABLE
    table.load()
    entries = {key: dataclasses.replace(e) for key, e in table._entries.items()}
    overloads = {key: set(keys) for key, keys in table._overloads.items()}
    yield
    table._entries.clear()
    table._entries.update(entries)
    table._overloads.clear()
    table._overloads.update(overloads)
    table._resolved.clear()


def one_line_error(match: str, call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ConvZooError, match=match) as caught:
        call(*args, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and len(message) < 300, message
    return message


@pytest.mark.parametrize(
    ("op", "packet"),
    [
        (aten.convolution.default, "aten::convolution"),
        ("aten::convolution.default", "aten::convolution"),
        ("aten::addmm.default", "aten::addmm"),
        (aten.addmm.out, "aten::addmm"),
    ],
)
def test_an_overload_may_not_shadow_its_packets_rule(op: Any, packet: str) -> None:
    before = convzoo.analyze(CONV, (3, 8, 8)).totals.macs
    for aspects in ({"macs": lambda call: 1}, {"free": "no arithmetic"}):
        one_line_error(
            f"its packet {packet} already has a MAC rule, which this would shadow; "
            "pass replace=True",
            convzoo.register_op,
            op,
            **aspects,
        )
    assert ops.TABLE.get(op) is None
    assert convzoo.analyze(CONV, (3, 8, 8)).totals.macs == before == 4 * 36 * 27


def test_a_packet_may_not_be_shadowed_by_an_overloads_rule() -> None:
    convzoo.register_op("convzoo_rules::scale.twice", elementwise=lambda call: 2)
    one_line_error(
        "convzoo_rules::scale: its overload convzoo_rules::scale.twice already has an "
        "element-wise rule, which would shadow this; pass replace=True",
        convzoo.register_op,
        "convzoo_rules::scale",
        macs=lambda call: 1,
    )
    assert ops.TABLE.get("convzoo_rules::scale") is None
    # other aspects do not clash: a field rule for the packet, a fused rule for an overload
    convzoo.register_op("convzoo_rules::scale", field=lambda call: (None, []))
    convzoo.register_op("convzoo_rules::scale.twice", fused=lambda call: 1)
    one_line_error(
        "its packet convzoo_rules::scale already has a receptive-field rule",
        convzoo.register_op,
        "convzoo_rules::scale.twice",
        field=lambda call: (None, []),
    )


def test_replace_true_overrides_in_both_directions_and_the_report_shows_it() -> None:
    convzoo.register_op(aten.convolution.default, macs=lambda call: 7, replace=True)
    report = convzoo.analyze(CONV, (3, 8, 8))
    assert report.totals.macs == 7 and report.complete
    convzoo.register_op(aten.convolution, macs=lambda call: 5, replace=True)
    assert ops.TABLE.get(aten.convolution.default) is None  # the packet's rule replaced it
    report = convzoo.analyze(CONV, (3, 8, 8))
    assert report.totals.macs == 5 and report.complete


@pytest.mark.parametrize("bad", [-5, 1.5, True, None, "3"])
def test_a_rule_returning_anything_but_a_non_negative_int_is_one_line(bad: Any) -> None:
    def my_rule(call: ops.OpCall) -> Any:
        return bad

    convzoo.register_op(aten.convolution.default, macs=my_rule, replace=True)
    message = one_line_error(
        "the MAC rule .*my_rule of aten::convolution.default returned .*; a cost rule "
        "returns a non-negative int",
        convzoo.analyze,
        CONV,
        (3, 8, 8),
    )
    assert f"({type(bad).__name__})" in message


def test_elementwise_and_fused_rules_are_checked_and_a_raising_rule_is_one_line() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    convzoo.register_op("aten::relu.default", elementwise=lambda call: 1.5, replace=True)
    one_line_error(
        r"element-wise rule <lambda> of aten::relu\.default returned 1\.5",
        convzoo.analyze,
        model,
        (3, 8, 8),
    )
    ops.TABLE.remove("aten::relu.default")
    convzoo.register_op(aten.convolution, fused=lambda call: -1)
    one_line_error(
        "the fused element-wise rule <lambda> of aten::convolution returned -1",
        convzoo.analyze,
        model,
        (3, 8, 8),
    )

    def broken(call: ops.OpCall) -> int:
        return call.arg("weight").shape[9]  # an IndexError in the user's rule

    convzoo.register_op(aten.convolution, macs=broken, replace=True)
    for meta in (True, False):  # a user's bug does not send the analysis to real tensors
        one_line_error(
            "the MAC rule .*broken of aten::convolution raised IndexError",
            convzoo.analyze,
            CONV,
            (3, 8, 8),
            meta=meta,
        )


def test_only_a_users_rules_are_wrapped() -> None:
    assert not hasattr(ops.TABLE.get(aten.convolution).cost, "__wrapped__")  # built-in: bare

    def rule(call: ops.OpCall) -> int:
        return 3

    entry = convzoo.register_op("convzoo_rules::scale", macs=rule)
    assert entry.cost is not rule and entry.cost.__wrapped__ is rule  # type: ignore[union-attr]
