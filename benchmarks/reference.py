"""The training loop as a tutorial reader writes it: nn.Module, DataLoader, autograd, Adam, MSELoss.

This is the baseline ``make bench`` measures the project's own training against. It uses the same
model class and the same settings; only the loop differs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mnist_ae.models.base import AutoEncoder


def fit_reference(
    model: AutoEncoder,
    images: torch.Tensor,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
    on_epoch_end: Callable[[int, float], None] | None = None,
) -> list[float]:
    loader = DataLoader(
        TensorDataset(images),
        batch_size=batch_size,
        shuffle=True,
        num_workers=2,
        generator=torch.Generator().manual_seed(seed),
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    criterion = nn.MSELoss()
    history = []
    for epoch in range(1, epochs + 1):
        running_loss = 0.0
        for (batch,) in loader:
            optimizer.zero_grad()
            loss = criterion(model(batch), batch)
            loss.backward()
            optimizer.step()
            running_loss += loss.item()
        history.append(running_loss / len(loader))
        if on_epoch_end is not None:
            on_epoch_end(epoch, history[-1])
    return history
