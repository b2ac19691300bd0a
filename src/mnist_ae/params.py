"""The typed schema of ``params.yaml``, checked once, up front, by every stage.

pydantic reports every problem at once (a typo such as ``train.epoch`` included, since unknown keys
are refused), so a user fixes the file in one go instead of one error per run. The schema has a
section per part of the pipeline; a fact that belongs to a part (a model family's knobs) lives in
that part and is imported from there.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from .core.dataset import IDX_FILES, NUM_CLASSES, TORCHVISION_DATASETS
from .core.errors import UserError
from .core.schema import Strict, read_yaml
from .models.sections import ModelParams

# The seeds the libraries take, checked with them (tests/test_params.py): torch.manual_seed takes an
# unsigned 64-bit integer; t-SNE's random_state (scikit-learn's and openTSNE's) a 32-bit one.
# numpy's default_rng takes any integer >= 0. Beyond these a stage would die with a traceback.
MAX_TRAIN_SEED = 2**64 - 1
MAX_EMBED_SEED = 2**32 - 1
CV_FOLDS = 5  # folds of the embed stage's cross-validated k-NN scores, checked against embed.size below


class DataParams(Strict):
    dataset: str
    md5: dict[str, str]
    # The one optional key: most datasets' class names come from torchvision, so an empty list or
    # none at all is the usual case (a custom dataset's classes are then the digits 0-9).
    classes: list[str] = Field(default_factory=list)
    validation: int = Field(ge=1)  # images of the training split held out for per-epoch metrics
    seed: int = Field(ge=0, le=MAX_TRAIN_SEED)  # which ones (a torch.Generator's seed)

    @field_validator("md5")
    @classmethod
    def _bare_names_and_lower_case(cls, md5: dict[str, str]) -> dict[str, str]:
        """Accept either case (some tools print MD5s in upper case); refuse a path as a key, as
        ``md5sum`` prints one (``*`` in front in binary mode), since files are looked up by bare name."""
        for name, checksum in md5.items():
            if "/" in name or "\\" in name or name.startswith("*"):
                bare = name.replace("\\", "/").rsplit("/", 1)[-1].lstrip("*")
                raise ValueError(f"{name!r} looks like a path; use the bare file name {bare!r} as the key")
            if not re.fullmatch(r"[0-9a-fA-F]{32}", checksum):
                raise ValueError(f"{name}: {checksum!r} is not an MD5 (32 hexadecimal digits)")
        return {name: checksum.lower() for name, checksum in md5.items()}

    @model_validator(mode="after")
    def _dataset_and_checksums_agree(self) -> DataParams:
        known = (*TORCHVISION_DATASETS, "custom")
        if self.dataset not in known:
            raise ValueError(f"unknown dataset {self.dataset!r}; use one of {', '.join(known)}")
        if self.dataset == "custom":
            if sorted(self.md5) != sorted(IDX_FILES):
                raise ValueError(f"dataset 'custom' needs an md5 for exactly these files: {', '.join(IDX_FILES)}")
        elif self.md5:
            raise ValueError(f"md5 is only for dataset 'custom'; {self.dataset}'s checksums come from torchvision")
        if self.classes and self.dataset != "custom":
            raise ValueError(f"classes is only for dataset 'custom'; "
                             f"{self.dataset}'s class names come from torchvision")
        if self.classes and (len(self.classes) != NUM_CLASSES or len(set(self.classes)) != NUM_CLASSES
                             or not all(name.strip() for name in self.classes)):
            raise ValueError(f"classes must be {NUM_CLASSES} distinct, non-empty names (labels 0-9 in order), "
                             f"or an empty list for the digits")
        return self


class TrainParams(Strict):
    seed: int = Field(ge=0, le=MAX_TRAIN_SEED)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    # constant, or cosine: from lr down to 0 over the run's steps (a long run's last epochs settle)
    schedule: Literal["constant", "cosine"]
    device: Literal["auto", "cpu", "cuda", "mps"]
    nproc: int = Field(ge=1)  # processes (ranks) on this machine; > 1 runs through torchrun
    precision: Literal["fp32", "bf16"]
    loss: Literal["mse", "bce"]  # the reconstruction loss trained on: a key of models.losses.LOSSES
    step: Literal["auto", "fused_mlp", "autograd"]  # auto, or a name in training.steps.STEPS
    # same_bits: one thread where a model's sums depend on the count (the same weights on any machine);
    # all_cores: every free core whatever the bits (OMP_NUM_THREADS, when set, wins over both)
    threads: Literal["same_bits", "all_cores"]


class EvaluateParams(Strict):
    examples: list[int] = Field(min_length=1)
    samples: int = Field(ge=1, le=1024)  # images decoded from random codes in samples.png
    seed: int = Field(ge=0, le=MAX_TRAIN_SEED)  # of those random codes (a torch.Generator's seed)


class EmbedParams(Strict):
    size: int = Field(ge=CV_FOLDS)
    seed: int = Field(ge=0, le=MAX_EMBED_SEED)
    perplexity: float = Field(gt=0)
    method: Literal["opentsne", "sklearn"]
    neighbors: int = Field(ge=1)
    probe: bool  # the linear probe: a logistic regression from the training codes to the test labels
    clusters: int = Field(ge=2)  # k of k-means, on the codes and on the pixels (the pixel_baseline stage)
    cluster_seed: int = Field(ge=0, le=MAX_EMBED_SEED)  # k-means' seed (scikit-learn's random_state)
    manifold: bool  # also cluster in a UMAP embedding, codes and pixels (N2D's recipe): its cost in docs/models.md
    manifold_dim: int = Field(ge=1)  # UMAP's n_components
    manifold_neighbors: int = Field(ge=2)  # UMAP's n_neighbors

    @model_validator(mode="after")
    def _fits_subset(self) -> EmbedParams:
        # t-SNE's rule: the perplexity must be less than the number of samples; and the k-NN score
        # is cross-validated in CV_FOLDS folds, each of which must hold more than k training points.
        if self.perplexity >= self.size:
            raise ValueError(f"perplexity ({self.perplexity}) must be less than size ({self.size})")
        smallest_fold = self.size - math.ceil(self.size / CV_FOLDS)
        if self.neighbors > smallest_fold:
            raise ValueError(f"neighbors ({self.neighbors}) must be at most {smallest_fold}: the k-NN score is "
                             f"cross-validated in {CV_FOLDS} folds of the {self.size} points")
        return self


class Params(Strict):
    data: DataParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    embed: EmbedParams

    def replicate_embed(self) -> EmbedParams:
        """``embed`` with its seeds (the t-SNE subset's, the clustering's) moved on by ``train.seed``.

        ``train.seed`` names a replicate of an experiment: ``-S 'train.seed=range(0,5)'`` reruns
        every seeded step (the training, the t-SNE, k-means, UMAP and the mixture, the pixels'
        clustering too) so that the spread over replicates is all the chance there is, not the
        training's alone. At ``train.seed: 0`` the seeds are embed's own.
        """
        offset = self.train.seed
        return self.embed.model_copy(update={"seed": (self.embed.seed + offset) % (MAX_EMBED_SEED + 1),
                                             "cluster_seed": (self.embed.cluster_seed + offset) % (MAX_EMBED_SEED + 1)})


def _describe(error: ValidationError) -> str:
    lines = []
    for problem in error.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "params"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = "unknown key (a typo?)"
        elif problem["type"] == "missing":
            message = "missing"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate ``params.yaml``; every problem in it is reported in one ``UserError``."""
    path = Path(path)
    raw = read_yaml(path, "run the stages from the project's root folder")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        count = error.error_count()
        raise UserError(f"{path} has {count} problem{'s' * (count > 1)}:\n{_describe(error)}") from None
