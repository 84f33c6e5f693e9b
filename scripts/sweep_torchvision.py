"""Analyse every torchvision builder (random weights, never the network) and check that
the model is left bit-identical, counts are complete, and, with ``--fcm``, that the MACs
equal torch's FlopCounterMode on a real forward of the same input.

    python scripts/sweep_torchvision.py [--fcm] [--only PATTERN]

Prints one line per model and a summary; exits 1 if any model fails a check.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import convzoo  # noqa: E402
from tests.sacred import fingerprint  # noqa: E402


def inputs(name: str, module: str) -> tuple:
    """Example arguments by task (small, so the real-tensor fallback stays cheap)."""
    if module == "detection":
        return ([torch.rand(3, 128, 160)],)
    if module == "video":
        return (
            torch.rand(1, 3, 16, 112, 112)
            if "mvit" not in name and "s3d" not in name
            else torch.rand(1, 3, 16, 224, 224),
        )
    if module == "optical_flow":
        return (torch.rand(1, 3, 128, 128), torch.rand(1, 3, 128, 128))
    return (torch.rand(1, 3, 224, 224) if "inception" not in name else torch.rand(1, 3, 299, 299),)


def build(name: str, module: str) -> torch.nn.Module:
    import torchvision

    kwargs: dict = {"weights": None}
    if module in ("detection", "segmentation"):
        kwargs["weights_backbone"] = None
    if module == "detection" and not name.startswith("ssd"):
        kwargs.update(min_size=128, max_size=160)
    if "googlenet" in name or "inception" in name:
        kwargs["init_weights"] = False
    if module == "quantization":
        kwargs["quantize"] = False
    return torchvision.models.get_model(name, **kwargs).eval()


def main() -> int:
    import torchvision.models as M
    from torch.utils.flop_counter import FlopCounterMode

    parser = argparse.ArgumentParser()
    parser.add_argument("--fcm", action="store_true", help="compare MACs with FlopCounterMode")
    parser.add_argument("--only", default="*")
    args = parser.parse_args()
    by_module = {
        n: mod
        for mod in ("detection", "segmentation", "video", "optical_flow", "quantization")
        for n in M.list_models(module=getattr(M, mod))
    }
    failures = 0
    names = [n for n in M.list_models() if fnmatch.fnmatch(n, args.only)]
    for name in names:
        module = by_module.get(name, "classification")
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = build(name, module)
            example = inputs(name, module)
            before = fingerprint(model)
            report = convzoo.analyze(model, example, receptive_fields=False)
            same = fingerprint(model) == before
            macs = report.totals.macs
            line = f"{name:40s} {macs:>16,} complete={report.complete} unchanged={same}"
            ok = same and report.complete
            if args.fcm:
                with FlopCounterMode(display=False) as counter, torch.no_grad():
                    model(*example)
                fcm = counter.get_total_flops() // 2
                line += f" fcm_diff={report.totals.macs - fcm:,}"
            fallback = any("real tensors" in n for n in report.notes)
            line += " (real fallback)" if fallback else ""
            if not report.complete:
                line += f" uncounted={[u.op for u in report.uncounted_ops]}"
        except Exception as exc:
            ok, line = False, f"{name:40s} ERROR {type(exc).__name__}: {str(exc)[:200]}"
        failures += not ok
        print(f"{line} [{time.perf_counter() - start:.1f}s]", flush=True)
    print(f"{len(names) - failures}/{len(names)} models pass")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
