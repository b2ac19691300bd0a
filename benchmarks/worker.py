"""Run one timed training in its own process, so each gets its own peak-memory reading.

Prints one JSON line: per-epoch seconds and losses, and the process's peak resident memory.
The process's own wall time, imports included, is what ``run.py`` reports as a whole run.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from itertools import pairwise
from pathlib import Path

import torch
import yaml

from mnist_ae.core.dataset import load_split
from mnist_ae.models.families import build_model
from mnist_ae.params import ModelParams, TrainParams
from mnist_ae.training.loop import fit

from .reference import fit_reference


def project_params(hidden: list[int], kind: str | None = None, **train: object) -> tuple[ModelParams, TrainParams]:
    """params.yaml's model and train sections (the defaults), with the mlp's widths, the family
    (``kind``, unless None) and ``train`` changed."""
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["model"]["mlp"]["hidden"] = hidden
    params["model"]["kind"] = kind or params["model"]["kind"]
    return ModelParams.model_validate(params["model"]), TrainParams.model_validate({**params["train"], **train})


def main() -> None:
    # Here, not at the top: `contention --against REV` imports project_params under an older package.
    from mnist_ae.training.steps import PRECISIONS

    parser = argparse.ArgumentParser()
    parser.add_argument("implementation", choices=["tutorial", "project"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32")
    parser.add_argument("--step", choices=["auto", "autograd"], default="auto")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256])
    parser.add_argument("--prepared", type=Path, default=Path("data/prepared"))
    parser.add_argument("--code-dim", type=int, help="model.code_dim (default: params.yaml's)")
    parser.add_argument("--batch-size", type=int, help="train.batch_size (default: params.yaml's)")
    parser.add_argument("--threads", choices=["same_bits", "all_cores"], help="train.threads (default: params.yaml's)")
    args = parser.parse_args()

    images = load_split(args.prepared, "train").images
    train = {"epochs": args.epochs, "precision": args.precision, "step": args.step}
    train |= {key: value for key, value in (("batch_size", args.batch_size), ("threads", args.threads)) if value}
    model_params, train_params = project_params(args.hidden, **train)
    if args.code_dim:
        model_params = model_params.model_copy(update={"code_dim": args.code_dim})
    model = build_model(model_params, seed=0)
    marks = [time.perf_counter()]

    def on_epoch_end(epoch: int, loss: float) -> None:
        marks.append(time.perf_counter())

    if args.implementation == "tutorial":
        if args.precision != "fp32":
            raise SystemExit("the tutorial loop is float32 only")
        losses = fit_reference(model, images, args.epochs, on_epoch_end=on_epoch_end)
    else:
        losses = fit(model, images, train_params, progress=False, on_epoch_end=on_epoch_end)
    epoch_seconds = [b - a for a, b in pairwise(marks)]
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    weights = float(sum(p.detach().double().sum() for p in model.parameters())).hex()  # the weights' bits, in short
    print(json.dumps({"epoch_seconds": epoch_seconds, "losses": losses, "peak_rss_mib": peak_mib,
                      "samples": len(images), "threads": torch.get_num_threads(), "weights": weights}))


if __name__ == "__main__":
    main()
