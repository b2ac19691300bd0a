"""Each model family's section of params.yaml, and ``model`` itself: the schema's part that belongs to
the models. Only pydantic here, no torch: every stage checks the whole params.yaml before it runs."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

from ..core.schema import Strict, Widths

# Each 3x3 stride-2 convolution halves the image's side (28 -> 14 -> 7 -> 4 -> 2): four fit.
MAX_CONV_LAYERS = 4


class MLPParams(Strict):
    """``model.mlp``: the fully connected family (mlp.py)."""

    hidden: Widths  # encoder's widths; the decoder mirrors them


class ConvParams(Strict):
    """``model.conv``: the convolutional family (conv.py)."""

    # channels of each strided 3x3 convolution down to the code; transposed ones mirror them back up
    channels: list[Annotated[int, Field(ge=1)]] = Field(min_length=1, max_length=MAX_CONV_LAYERS)


class VAEParams(Strict):
    """``model.vae``: the variational family (vae.py)."""

    hidden: Widths  # as mlp's; the encoder ends in a mean and a log-variance of the code
    beta: float = Field(ge=0)  # weight of the KL term: 1 is the plain VAE, more trades detail for a smoother code space


class ModelParams(Strict):
    """``model``: the family trained, the code's size, and every family's section (its name is the
    family's ``kind``)."""

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
