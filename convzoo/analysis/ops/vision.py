"""torchvision's ops, keyed by qualified name: registered without importing torchvision
and found when the tracer first meets one (they exist only once torchvision is loaded)."""

from __future__ import annotations

from convzoo.analysis import formulas as f
from convzoo.analysis.ops.call import OpCall
from convzoo.analysis.ops.elementwise import per_output
from convzoo.analysis.ops.table import TABLE


def deform_conv2d(call: OpCall) -> int:
    """``deform_conv2d(input, weight, offset, mask, ..., use_mask)``: a convolution, plus
    the modulation by ``mask`` when ``use_mask``."""
    mask = call.arg("mask")
    modulated = bool(call.arg("use_mask")) and mask.numel()
    return f.deform_conv_macs(
        call.shape("input"), call.shape("weight"), list(call.result.shape), modulated
    )


def per_box(call: OpCall) -> int:
    """``nms(dets, scores, iou_threshold)``: one op per value of ``dets`` read."""
    return int(call.arg("dets").numel())


TABLE.register("torchvision::deform_conv2d", macs=deform_conv2d)
for _name in ("roi_align", "ps_roi_align", "roi_pool", "ps_roi_pool"):
    TABLE.register(f"torchvision::{_name}", elementwise=per_output)  # as upsampling
TABLE.register("torchvision::nms", elementwise=per_box)
