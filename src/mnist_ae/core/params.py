"""The typed schema of ``params.yaml``, checked once, up front, by every stage.

pydantic reports every problem at once (a typo such as ``train.epoch`` included, since unknown keys
are refused), so a user fixes the file in one go instead of one error per run.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from .dataset import IDX_FILES, NUM_CLASSES, TORCHVISION_DATASETS
from .errors import UserError

CV_FOLDS = 5  # folds of the cross-validated k-NN accuracy of the embed stage
# The seeds the libraries take, checked with them (tests/test_params.py): torch.manual_seed takes an
# unsigned 64-bit integer; t-SNE's random_state (scikit-learn's and openTSNE's) a 32-bit one.
# numpy's default_rng takes any integer >= 0. Beyond these a stage would die with a traceback.
MAX_TRAIN_SEED = 2**64 - 1
MAX_EMBED_SEED = 2**32 - 1
# Each strided convolution halves the image's side (28 -> 14 -> 7 -> 4 -> 2): four fit.
MAX_CONV_LAYERS = 4


class _Strict(BaseModel):
    # No defaults anywhere below: params.yaml is the one place a value is set, and a key missing
    # from it is reported like a misspelt one.
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(_Strict):
    dataset: str
    md5: dict[str, str]
    # The one optional key: most datasets' class names come from torchvision, so an empty list or
    # none at all is the usual case (a custom dataset's classes are then the digits 0-9).
    classes: list[str] = Field(default_factory=list)

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


def _widths_are_a_list(value: object) -> object:
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError(f"a list of hidden widths is expected now: write `hidden: [{value}]` "
                         f"(or e.g. [512, 128] for 784-512-128-code-128-512-784)")
    return value


Widths = Annotated[list[Annotated[int, Field(ge=1)]], BeforeValidator(_widths_are_a_list), Field(min_length=1)]


# One section per model family (models/): its knobs, typed. The section's name is the family's
# `kind`; model.code_dim, the size of the code, is shared by every family.
class MLPParams(_Strict):
    hidden: Widths  # encoder's widths; the decoder mirrors them


class ConvParams(_Strict):
    # channels of each strided 3x3 convolution down to the code; transposed ones mirror them back up
    channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_CONV_LAYERS)


class VAEParams(_Strict):
    hidden: Widths  # as mlp's; the encoder ends in a mean and a log-variance of the code
    beta: float = Field(ge=0)  # weight of the KL term: 1 is the plain VAE, more trades detail for a smoother code space


class ModelParams(_Strict):
    kind: str
    code_dim: int = Field(ge=1)
    mlp: MLPParams
    conv: ConvParams
    vae: VAEParams

    @field_validator("kind")
    @classmethod
    def _a_family(cls, kind: str) -> str:
        kinds = family_kinds()
        if kind not in kinds:
            raise ValueError(f"unknown model kind {kind!r}; use one of {', '.join(kinds)}")
        return kind

    @property
    def family(self) -> BaseModel:
        """The chosen family's own section: ``model.<kind>``."""
        return getattr(self, self.kind)


def family_kinds() -> list[str]:
    """The model families the schema has a section for (the fields of ``ModelParams`` that are sections)."""
    return [name for name, field in ModelParams.model_fields.items()
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)]


class TrainParams(_Strict):
    seed: int = Field(ge=0, le=MAX_TRAIN_SEED)
    epochs: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    device: Literal["auto", "cpu", "cuda", "mps"]
    nproc: int = Field(ge=1)  # processes (ranks) on this machine; > 1 runs through torchrun
    precision: Literal["fp32", "bf16"]
    loss: Literal["mse", "bce"]  # the reconstruction loss trained on: a key of models.losses.LOSSES
    step: Literal["auto", "autograd"]  # autograd: never the hand-written step (for debugging)


class EvaluateParams(_Strict):
    examples: list[int] = Field(min_length=1)
    samples: int = Field(ge=1, le=1024)  # images decoded from random codes in samples.png
    seed: int = Field(ge=0, le=MAX_TRAIN_SEED)  # of those random codes (a torch.Generator's seed)


class EmbedParams(_Strict):
    size: int = Field(ge=CV_FOLDS)
    seed: int = Field(ge=0, le=MAX_EMBED_SEED)
    perplexity: float = Field(gt=0)
    method: Literal["opentsne", "sklearn"]
    neighbors: int = Field(ge=1)

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


class Params(_Strict):
    data: DataParams
    model: ModelParams
    train: TrainParams
    evaluate: EvaluateParams
    embed: EmbedParams


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
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path} not found: run the stages from the project's root folder") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {error}") from None
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        count = error.error_count()
        raise UserError(f"{path} has {count} problem{'s' * (count > 1)}:\n{_describe(error)}") from None


def main() -> None:
    """``python -m mnist_ae.core.params [FILE]``: check a params file without running anything.

    ``make repro`` runs this first because DVC reruns a stage only when a key it tracks changes: a
    misspelt key (``train.epoch``) changes none, so ``dvc repro`` alone would say all is up to date.
    """
    import sys

    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("params.yaml")
    load_params(path)
    print(f"{path}: OK")


if __name__ == "__main__":
    from .errors import run_stage

    run_stage(main)
