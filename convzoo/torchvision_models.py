"""torchvision builders for ``convzoo report torchvision:NAME``: random weights, no network.

Every name in ``torchvision.models.list_models()`` builds with ``weights=None`` (and
``weights_backbone=None`` where the builder has one, so no backbone is downloaded). The
default input is what the builder's default weights expect, read from the weights enum's
metadata and transform keywords (reading them downloads nothing), through one rule per
transform class in :data:`INPUT_RULES`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from convzoo.errors import ConvZooError, first_line, render

Size = tuple[int, ...]
VIDEO_FRAMES = 16
"""Frames of a video clip when the weights ask for no more (torchvision's video recipes)."""
FLOW_SIZE = (3, 368, 768)
"""Each of RAFT's two frames: the Sintel crop of torchvision's optical-flow training recipe
(RAFT takes any H and W divisible by 8; the weights record no size)."""
# Builders whose default init is slow and warns (scipy truncnorm); random weights suffice.
NO_INIT_WEIGHTS = {"googlenet", "inception_v3", "quantized_googlenet", "quantized_inception_v3"}


def _keywords(weights: Any) -> dict[str, Any]:
    return dict(getattr(weights.transforms, "keywords", {}) or {})


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return (int(value[0]), int(value[-1]))
    return (int(value), int(value))


def _image(weights: Any, model: nn.Module) -> tuple[Size, ...]:
    """Classification: the weights' crop; a ViT built without weights fixes its own size."""
    fixed = getattr(model, "image_size", None)
    h, w = _pair(fixed if isinstance(fixed, int) else _keywords(weights)["crop_size"])
    return ((3, h, w),)


def _video(weights: Any, model: nn.Module) -> tuple[Size, ...]:
    """Video: ``(C, T, H, W)`` at the weights' crop, 16 frames or the weights' minimum."""
    h, w = _pair(_keywords(weights)["crop_size"])
    frames = max(VIDEO_FRAMES, int(weights.meta.get("min_temporal_size", 1)))
    return ((3, frames, h, w),)


def _segmentation(weights: Any, model: nn.Module) -> tuple[Size, ...]:
    """Segmentation: a square image at the weights' resize size (520 for all of them)."""
    h, w = _pair(_keywords(weights)["resize_size"])
    return ((3, h, w),)


def _detection(weights: Any, model: nn.Module) -> tuple[Size, ...]:
    """Detection: a square image that the model's own transform keeps at its size."""
    side = int(max(model.transform.min_size))  # type: ignore[union-attr,arg-type]
    return ((3, side, side),)


def _flow(weights: Any, model: nn.Module) -> tuple[Size, ...]:
    """Optical flow (RAFT): two frames."""
    return (FLOW_SIZE, FLOW_SIZE)


INPUT_RULES: dict[str, Callable[[Any, nn.Module], tuple[Size, ...]]] = {
    "ImageClassification": _image,
    "VideoClassification": _video,
    "SemanticSegmentation": _segmentation,
    "ObjectDetection": _detection,
    "OpticalFlow": _flow,
}
"""Transform class of the default weights -> default input sizes (batch excluded)."""
LIST_INPUTS = {"ObjectDetection"}
"""Tasks whose models take one list of ``Tensor[C, H, W]`` images instead of a batch."""


def default_weights(name: str) -> Any:
    """The builder's ``DEFAULT`` weights enum member (metadata only: nothing downloaded)."""
    import torchvision

    return torchvision.models.get_model_weights(name).DEFAULT


def task(name: str) -> str:
    """The transform class name of ``name``'s default weights, e.g. ``'ObjectDetection'``."""
    transforms = default_weights(name).transforms
    return str(getattr(transforms, "func", transforms).__name__)


def default_input(name: str, model: nn.Module) -> tuple[Size, ...]:
    """Default input sizes for torchvision model ``name`` (one per positional input)."""
    kind = task(name)
    if kind not in INPUT_RULES:  # pragma: no cover (a new torchvision task)
        raise ConvZooError(f"torchvision:{name} has no default input: give one with --input")
    return INPUT_RULES[kind](default_weights(name), model)


def builder_kwargs(name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """``weights=None``, ``weights_backbone=None`` where accepted, then the user's kwargs."""
    import torchvision

    params = inspect.signature(torchvision.models.get_model_builder(name)).parameters
    base: dict[str, Any] = {"weights": None}
    if "weights_backbone" in params:
        base["weights_backbone"] = None
    if name in NO_INIT_WEIGHTS:
        base["init_weights"] = False
    return {**base, **kwargs}


def build(name: str, kwargs: dict[str, Any]) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, ...)``; detection models are
    adapted to take a batch ``Tensor[B, C, H, W]`` (see :func:`takes_image_list`)."""
    import torchvision

    if kwargs.get("weights") or kwargs.get("weights_backbone"):
        raise ConvZooError("convzoo builds torchvision models with random weights: drop weights")
    try:
        model = torchvision.models.get_model(name, **builder_kwargs(name, kwargs))
    except Exception as exc:
        raise ConvZooError(f"torchvision cannot build {render(name)}: {first_line(exc)}") from None
    if task(name) in LIST_INPUTS:
        takes_image_list(model)
    return model


_LIST_CLASSES: dict[type[nn.Module], type[nn.Module]] = {}


def _list_class(base: type[nn.Module]) -> type[nn.Module]:
    if base in _LIST_CLASSES:
        return _LIST_CLASSES[base]

    def forward(self: nn.Module, *batches: Any) -> Any:
        """``Tensor[B, C, H, W]`` batches -> the list of their images, as detectors expect."""
        return base.forward(self, [image for batch in batches for image in batch])

    cls = type(base.__name__, (base,), {"forward": forward, "__module__": base.__module__})
    return _LIST_CLASSES.setdefault(base, cls)


def takes_image_list(model: nn.Module) -> nn.Module:
    """Let a detector that takes ``list[Tensor[C, H, W]]`` be called with ``Tensor[B, C, H, W]``
    (the images of the batch, in order), so ``analyze(model, (3, H, W), batch_size=B)`` runs
    it on B images. Changes the class of ``model`` only (same name, same modules)."""
    model.__class__ = _list_class(type(model))
    return model
