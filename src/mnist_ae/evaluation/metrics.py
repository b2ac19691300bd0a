"""Reconstruction error of a trained model: per split, per class, against the mean-image baseline,
and the test loss of the objective it was trained on.

Whatever the family and the loss, the headline number is the reconstruction MSE: the one that
``dvc exp show`` can compare across experiments. ``test_loss`` is the run's own objective (a BCE,
a VAE's reconstruction + beta x KL) per element, comparable only between runs of the same objective.
"""

from __future__ import annotations

import pandas as pd
import torch

from ..core.dataset import Split
from ..core.errors import UserError
from ..models.base import AutoEncoder
from ..models.reconstruction import Assessment, mean_image_mse


def per_class_table(errors: torch.Tensor, labels: torch.Tensor, names: tuple[str, ...]) -> pd.DataFrame:
    """Mean, median and 95th percentile of the per-image ``errors`` in each class present, and the
    class's count, in label order: the mean alone hides whether a class is hard throughout or has a
    tail of failures."""
    frame = pd.DataFrame({"label": labels.numpy(), "mse": errors.double().numpy()})
    table = frame.groupby("label")["mse"].agg(
        test_mse="mean", test_mse_median="median", test_mse_p95=lambda mse: mse.quantile(0.95), count="count")
    table.insert(0, "class", [names[label] for label in table.index])
    return table.reset_index(drop=True).round(6)


def reconstruction_metrics(train: Split, test: Split, results: dict[str, Assessment]) -> tuple[dict, pd.DataFrame]:
    """The metrics (``metrics/evaluate.json``) and the per-class table of the test split, from the
    model's ``results`` on each split."""
    per_class = per_class_table(results["test"].mse, test.labels, test.classes)
    metrics = {
        "train_mse": round(float(results["train"].mse.mean()), 6),
        "test_mse": round(float(results["test"].mse.mean()), 6),
        "test_loss": round(results["test"].objective_per_element, 6),
        "baseline_train_mse": round(mean_image_mse(train.images, train.images), 6),
        "baseline_test_mse": round(mean_image_mse(train.images, test.images), 6),
        "test_mse_per_class": dict(zip(per_class["class"], per_class["test_mse"])),
    }
    return metrics, per_class


@torch.no_grad()
def sample_images(model: AutoEncoder, train_codes: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """``count`` images decoded from random codes: from a VAE's prior N(0, I), which it was trained
    to decode; for another family, from a Gaussian fitted to the training split's codes (their mean
    and covariance), the closest such a model has to a prior."""
    noise = torch.randn(count, model.code_dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    if model.has_prior:
        codes = noise
    else:
        train_codes = train_codes.double()
        covariance = torch.cov(train_codes.T).reshape(model.code_dim, model.code_dim)
        # covariance = V diag(variances) V^T; eigh, unlike a Cholesky factor, takes a singular one too
        # (dead code units, a constant split).
        variances, axes = torch.linalg.eigh(covariance)
        codes = train_codes.mean(dim=0) + noise @ (axes * variances.clamp(min=0).sqrt()).T
    device = next(model.parameters()).device
    return model.decode(codes.float().to(device)).cpu()


def check_examples(examples: list[int], split: Split) -> None:
    """The figure's indices must exist in the split; checked before any work is done."""
    outside = [i for i in examples if not 0 <= i < len(split)]
    if outside:
        raise UserError(f"evaluate.examples {outside} are outside the training split (0..{len(split) - 1})")
