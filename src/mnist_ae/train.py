"""Fit the auto-encoder with Adam on the MSE loss, as fast as this small MLP allows.

The whole split sits in memory on the device and batches are gathered by index from one seeded
permutation per epoch: a per-sample ``DataLoader`` spends most of its time collating 32 tensors.
The forward and backward passes are written out by hand into buffers allocated once, with the
loss kept on the device: for batches of 32 autograd's graph building, per-step allocations and a
``.item()`` sync per step cost more than the arithmetic itself. ``test_train.py`` checks these
gradients against autograd's, and ``make bench`` times the result against a tutorial loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from .errors import UserError
from .model import AutoEncoder

# How often (in steps) the progress bar is advanced and the loss checked for NaN/inf: each check
# waits for the device, so it is done every few hundred steps rather than every step.
CHECK_EVERY = 250


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0


class _Step:
    """One optimisation step of the 4-layer auto-encoder, with every buffer allocated up front."""

    def __init__(self, model: AutoEncoder, batch_size: int, lr: float) -> None:
        layers = model.linears()
        params = [p for layer in layers for p in (layer.weight, layer.bias)]
        # All weights live in one flat tensor and all gradients in another (the model's parameters
        # become views of them), so fused Adam updates one long tensor in one kernel: 96 against
        # 122 us a step, timed alone here. The first weight is stored transposed, (784, 256): its gradient product
        # then writes a tall matrix, which MKL does in 71 instead of 108 us at batch size 32.
        self.flat = torch.nn.Parameter(torch.empty(sum(p.numel() for p in params), dtype=params[0].dtype,
                                                   device=params[0].device))
        self.flat.grad = torch.zeros_like(self.flat)
        offset = 0
        for i, param in enumerate(params):
            size, storage_shape = param.numel(), param.shape[::-1] if i == 0 else param.shape
            value = self.flat.data[offset : offset + size].view(storage_shape)
            grad = self.flat.grad[offset : offset + size].view(storage_shape)
            value.copy_(param.detach().t() if i == 0 else param.detach())
            param.data, param.grad = (value.t(), grad.t()) if i == 0 else (value, grad)
            offset += size
        self.optimizer = torch.optim.Adam([self.flat], lr=lr, fused=True)
        self.weights = [(layer.weight, layer.bias) for layer in layers]
        self.batch_size = batch_size
        self.buffers = _Buffers.allocate(batch_size, [layers[0].in_features] + [l.out_features for l in layers], params[0])
        self.short_buffers: _Buffers | None = None  # views for a short last batch, made when first needed

    @torch.no_grad()
    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        """Train on ``data[index]``; the batch's sum of squared errors goes to ``loss_out``."""
        n = len(index)
        if n == self.batch_size:
            b = self.buffers
        else:
            if self.short_buffers is None or self.short_buffers.n != n:
                self.short_buffers = self.buffers.first(n)
            b = self.short_buffers
        (w1, b1), (w2, b2), (w3, b3), (w4, b4) = self.weights
        x, h1, code, h3, y, g1, g2, g3, g4 = b.x, b.h1, b.code, b.h3, b.y, b.g1, b.g2, b.g3, b.g4
        torch.index_select(data, 0, index, out=x)

        # Forward: Linear, ReLU, Linear | Linear, ReLU, Linear, Sigmoid.
        torch.addmm(b1, x, w1.t(), out=h1).relu_()
        torch.addmm(b2, h1, w2.t(), out=code)
        torch.addmm(b3, code, w3.t(), out=h3).relu_()
        torch.addmm(b4, h3, w4.t(), out=y).sigmoid_()

        # Loss = mean((y - x)^2); its gradient wrt the sigmoid's input is 2/(n*D) * (y - x) * y * (1 - y).
        # The factor 2/(n*D) is applied by the matrix products' alpha instead of a pass of its own.
        scale = 2.0 / x.numel()
        torch.sub(y, x, out=g4)
        torch.dot(b.g4_flat, b.g4_flat, out=loss_out)
        torch.addcmul(y, y, y, value=-1.0, out=b.sigmoid_slope)  # y * (1 - y)
        g4.mul_(b.sigmoid_slope)

        # Backward, layer by layer; aten's threshold_backward is autograd's own ReLU backward, with out=.
        torch.addmm(w4.grad, g4.t(), h3, beta=0, alpha=scale, out=w4.grad)
        torch.addmv(b4.grad, g4.t(), b.ones, beta=0, alpha=scale, out=b4.grad)
        torch.addmm(g3, g4, w4, beta=0, alpha=scale, out=g3)
        torch.ops.aten.threshold_backward.grad_input(g3, h3, 0, grad_input=g3)
        torch.mm(g3.t(), code, out=w3.grad)
        torch.mv(g3.t(), b.ones, out=b3.grad)
        torch.mm(g3, w3, out=g2)
        torch.mm(g2.t(), h1, out=w2.grad)
        torch.mv(g2.t(), b.ones, out=b2.grad)
        torch.mm(g2, w2, out=g1)
        torch.ops.aten.threshold_backward.grad_input(g1, h1, 0, grad_input=g1)
        torch.mm(x.t(), g1, out=w1.grad.t())  # the transposed storage: see __init__
        torch.mv(g1.t(), b.ones, out=b1.grad)
        self.optimizer.step()


@dataclass(frozen=True)
class _Buffers:
    """Activations and their gradients for ``n`` samples: input, the four layers' outputs, and so on."""

    n: int
    x: torch.Tensor
    h1: torch.Tensor
    code: torch.Tensor
    h3: torch.Tensor
    y: torch.Tensor
    g1: torch.Tensor  # gradients wrt each layer's pre-activation
    g2: torch.Tensor
    g3: torch.Tensor
    g4: torch.Tensor
    g4_flat: torch.Tensor
    sigmoid_slope: torch.Tensor
    ones: torch.Tensor

    @classmethod
    def allocate(cls, n: int, widths: list[int], like: torch.Tensor) -> _Buffers:
        """``widths``: input, hidden, code, hidden, output."""
        def empty(width: int) -> torch.Tensor:
            return torch.empty(n, width, dtype=like.dtype, device=like.device)

        d, h, c, h2, out = widths
        g4 = empty(out)
        return cls(n, empty(d), empty(h), empty(c), empty(h2), empty(out), empty(h), empty(c), empty(h2), g4,
                   g4.view(-1), empty(out), torch.ones(n, dtype=like.dtype, device=like.device))

    def first(self, n: int) -> _Buffers:
        """Views of the first ``n`` rows, for a short last batch."""
        rows = [getattr(self, name)[:n] for name in ("x", "h1", "code", "h3", "y", "g1", "g2", "g3", "g4")]
        return _Buffers(n, *rows, rows[-1].reshape(-1), self.sigmoid_slope[:n], self.ones[:n])


class _DistributedStep:
    """One step as one rank of a group: PyTorch's DistributedDataParallel over autograd.

    Each rank takes its slice of the same global batch; DDP averages the gradients over the ranks
    during the backward pass. The hand-written backward of ``_Step`` bypasses autograd, which DDP
    hooks into, so this path uses autograd and is correct rather than fast: it is for more devices
    than one, not for more speed on one machine's cores.
    """

    def __init__(self, model: AutoEncoder, lr: float) -> None:
        from torch.nn.parallel import DistributedDataParallel

        device = next(model.parameters()).device
        self.model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
        self.rank, self.world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()

    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        x = data[index.tensor_split(self.world_size)[self.rank]]
        squared_error = (self.model(x) - x).pow(2).sum()
        # DDP divides the summed gradients by the number of ranks: scaled so, the result is the
        # gradient of the whole batch's mean, whatever the slices' sizes (even an empty one).
        loss = squared_error * (self.world_size / (len(index) * data.shape[1]))
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        self.optimizer.step()
        loss_out.copy_(squared_error.detach())


def _check_finite(step_losses: torch.Tensor, start: int, stop: int, epoch: int) -> None:
    window = step_losses[start:stop]
    if not bool(torch.isfinite(window).all()):
        bad = start + int((~torch.isfinite(window)).nonzero()[0, 0])
        raise UserError(
            f"training diverged at epoch {epoch}, step {bad + 1}: the loss is {float(step_losses[bad])}; "
            f"lower train.lr"
        )


def fit(
    model: AutoEncoder,
    data: torch.Tensor,
    config: TrainConfig,
    progress: bool = True,
    on_epoch_end: Callable[[int, float], None] | None = None,
    distributed: bool = False,
) -> list[float]:
    """Train ``model`` in place on ``data`` (N, D), on ``data``'s device; returns each epoch's mean loss.

    The epoch's loss is the mean over its batches of the batch's mean squared error, as a tutorial
    loop reports it. ``on_epoch_end(epoch, loss)`` lets a caller log or time each epoch.
    ``distributed``: this process is one rank of a ``torch.distributed`` group (see
    ``distributed.py``); every rank must call ``fit`` with the same arguments.
    """
    model.train()
    n_samples = len(data)
    n_steps = math.ceil(n_samples / config.batch_size)
    step = _DistributedStep(model, config.lr) if distributed else _Step(model, config.batch_size, config.lr)
    generator = torch.Generator().manual_seed(config.seed)
    batch_sizes = torch.full((n_steps,), float(config.batch_size), device=data.device)
    batch_sizes[-1] = n_samples - (n_steps - 1) * config.batch_size
    elements_per_step = batch_sizes * data.shape[1]
    step_losses = torch.empty(n_steps, dtype=data.dtype, device=data.device)
    history = []
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(n_samples, generator=generator).to(data.device)
        with tqdm(total=n_steps, desc=f"epoch {epoch}/{config.epochs}", unit="batch", disable=not progress) as bar:
            for start in range(0, n_steps, CHECK_EVERY):
                stop = min(start + CHECK_EVERY, n_steps)
                for i in range(start, stop):
                    step(data, order[i * config.batch_size : (i + 1) * config.batch_size], step_losses[i])
                _check_finite(step_losses, start, stop, epoch)
                bar.update(stop - start)
            if distributed:  # each rank summed its own slice of every batch
                torch.distributed.all_reduce(step_losses)
            mean_loss = float((step_losses / elements_per_step).mean())
            bar.set_postfix(loss=f"{mean_loss:.4f}")
        history.append(mean_loss)
        if on_epoch_end is not None:
            on_epoch_end(epoch, mean_loss)
    return history
