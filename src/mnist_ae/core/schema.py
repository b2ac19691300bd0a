"""The base of every section of ``params.yaml``'s schema (``mnist_ae/params.py``), and the field
types more than one section shares. Each part of the pipeline defines its own section with these."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    # No defaults in any section: params.yaml is the one place a value is set, and a key missing
    # from it is reported like a misspelt one.
    model_config = ConfigDict(extra="forbid", frozen=True)


# A fully connected encoder's hidden widths (its decoder mirrors them): [512, 128] is 784-512-128-code.
Widths = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]
