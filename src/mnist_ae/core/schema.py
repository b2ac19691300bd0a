"""The base of every section of ``params.yaml``'s schema (``mnist_ae/params.py``), and the field
types more than one section shares. Each part of the pipeline defines its own section with these."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from .errors import UserError


class Strict(BaseModel):
    # No defaults in any section: params.yaml is the one place a value is set, and a key missing
    # from it is reported like a misspelt one.
    model_config = ConfigDict(extra="forbid", frozen=True)


# A fully connected encoder's hidden widths (its decoder mirrors them): [512, 128] is 784-512-128-code.
Widths = Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1)]


def read_yaml(path: Path, not_found: str) -> Any:
    """A YAML file's content (an empty file: {}), or one line that names the file and its problem;
    ``not_found`` says what to do when it is missing."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"{path} not found: {not_found}") from None
    except yaml.YAMLError as error:
        raise UserError(f"{path} is not valid YAML: {' '.join(str(error).split())}") from None
