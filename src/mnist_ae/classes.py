"""The names of a dataset's ten classes, for legends, charts and metric keys.

torchvision's dataset classes name MNIST's, FashionMNIST's and KMNIST's classes ("0 - zero",
"Trouser", "tsu"), so the names are read from there; a custom dataset names its own in
``data.classes``, or is labelled by digit.
"""

from __future__ import annotations

from .params import NUM_CLASSES

DIGITS = tuple(str(digit) for digit in range(NUM_CLASSES))


def class_names(dataset: str, custom: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The names of labels 0..9 of ``dataset``; ``custom`` names those of ``data.dataset: custom``."""
    if dataset == "custom":
        return list(custom) or list(DIGITS)
    from torchvision import datasets  # imported here: it is slow to import

    return list(getattr(datasets, dataset).classes)
