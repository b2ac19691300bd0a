"""A training step for the ``mlp`` family on the MSE loss, written out by hand: where the CPU's speed
lives. It does autograd's and fused ``torch.optim.Adam``'s maths with every buffer allocated once,
every weight in one flat tensor and the loss left on the device (docs/performance.md, "What makes
training fast"), on its own copy of the weights, written back into the model by ``sync_model()``.
``tests/test_train.py`` checks it against autograd for several depths. In bf16 the products and
activations run in bfloat16; the master weights, Adam and the loss stay in float32, as under
``torch.autocast``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.adam import adam

from ..models.base import AutoEncoder
from ..models.mlp import MLP

# The (model.kind, train.loss) pairs whose forward, loss and backward this module writes out, and
# the methods it writes out in place of the model's own: MLP must keep AutoEncoder's.
IMPLEMENTS = {(MLP.kind, "mse")}
WRITTEN_OUT = ("forward", "objective", "objective_terms", "combine")


def implements(model: nn.Module, loss: str) -> bool:
    """Whether this step trains ``model`` on ``loss`` exactly as autograd would: a pair of
    ``IMPLEMENTS``; an ``MLP`` itself (a subclass may change what it computes) that computes its
    output and objective as every ``AutoEncoder`` does; layers forming a chain it writes out; every
    parameter trained."""
    return ((getattr(model, "kind", None), loss) in IMPLEMENTS and type(model) is MLP
            and all(getattr(MLP, name) is getattr(AutoEncoder, name) for name in WRITTEN_OUT)
            and all(p.requires_grad for p in model.parameters()) and model.dense_layers() is not None)


class FusedMLPStep:
    """One Adam step on ``data[index]`` for a model that ``implements`` covers."""

    def __init__(self, model: MLP, max_batch: int, lr: float, dtype: torch.dtype = torch.float32) -> None:
        layers = model.dense_layers()
        if layers is None:
            raise ValueError("FusedMLPStep covers the mlp family's Linear/ReLU chains ending in a Sigmoid; "
                             "use AutogradStep")
        self.model_params = [(linear.weight, linear.bias) for linear, _ in layers]
        self.activations = [activation for _, activation in layers]
        device = layers[0][0].weight.device
        sizes = [p.numel() for pair in self.model_params for p in pair]
        self.flat = torch.empty(sum(sizes), device=device)  # float32 master weights
        self.flat.grad = torch.zeros_like(self.flat)
        # Adam's state, for torch's own fused kernel through its functional form: an Optimizer object
        # would run the same kernel, but its constructor imports torch's compiler stack, for nothing here.
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(self.flat), torch.zeros_like(self.flat)
        self.adam_steps = torch.zeros((), device=device)
        self.lr = lr
        # In float32 the products read and write the master copies; in bf16 they use a low-precision
        # copy of the weights, refreshed after each Adam step, and gradients cast up before it.
        self.mixed = dtype != self.flat.dtype
        self.flat_low = self.flat.to(dtype) if self.mixed else self.flat
        self.grad_low = torch.zeros_like(self.flat_low) if self.mixed else self.flat.grad
        # Per layer: the weight as (in, out) for the forward product, as (out, in) for the backward
        # one, the bias, and the same views into the gradients. Layer 0 is stored (in, out).
        self.layers: list[_LayerViews] = []
        offset = 0
        for i, (weight, bias) in enumerate(self.model_params):
            shape, transposed = (weight.shape[::-1], True) if i == 0 else (weight.shape, False)
            (master_w, master_b), (w, b), (grad_w, grad_b) = (
                (flat[offset : offset + weight.numel()].view(shape),
                 flat[offset + weight.numel() : offset + weight.numel() + bias.numel()])
                for flat in (self.flat, self.flat_low, self.grad_low)
            )
            master_w.copy_(weight.detach().t() if transposed else weight.detach())
            master_b.copy_(bias.detach())
            self.layers.append(_LayerViews(master_w, master_b, w_in_out=w if transposed else w.t(),
                                           w_out_in=w.t() if transposed else w, b=b, grad_w=grad_w,
                                           grad_b=grad_b, transposed=transposed))
            offset += weight.numel() + bias.numel()
        if self.mixed:
            self.flat_low.copy_(self.flat)
        widths = [layers[0][0].in_features] + [linear.out_features for linear, _ in layers]
        # Per batch size: the full batch's buffers, and views of their first rows for a short last batch.
        self.buffers = {max_batch: _Buffers.allocate(max_batch, widths, dtype, device)}
        self.max_batch = max_batch

    @torch.no_grad()
    def __call__(self, data: torch.Tensor, index: torch.Tensor, loss_out: torch.Tensor) -> None:
        """Train on ``data[index]``; the batch's sum of squared errors goes to ``loss_out`` (float32)."""
        n = len(index)
        if n not in self.buffers:
            self.buffers[n] = self.buffers[self.max_batch].first(n)
        buffers = self.buffers[n]
        acts, grads = buffers.acts, buffers.grads
        torch.index_select(data, 0, index, out=buffers.target)
        if self.mixed:
            acts[0].copy_(buffers.target)

        for i, (layer, activation) in enumerate(zip(self.layers, self.activations)):
            out = torch.addmm(layer.b, acts[i], layer.w_in_out, out=acts[i + 1])
            if activation == "relu":
                out.relu_()
            elif activation == "sigmoid":
                out.sigmoid_()

        # Loss = mean((y - x)^2); its gradient wrt the sigmoid's input is 2/(n*D) * (y - x) * y * (1 - y).
        # The factor 2/(n*D) is applied by the last layer's matrix products (alpha), not a pass of its own.
        y, last = acts[-1], len(self.layers) - 1
        scale = 2.0 / buffers.target.numel()
        torch.sub(y, buffers.target, out=buffers.error)
        # Squares, then torch's own sum, not a BLAS dot: a dot's partial sums follow the thread count and
        # the buffers' alignment, so the logged loss would differ in its last bits from run to run.
        torch.mul(buffers.error, buffers.error, out=buffers.squared)
        torch.sum(buffers.squared, dim=None, out=loss_out)
        torch.addcmul(y, y, y, value=-1.0, out=buffers.sigmoid_slope)  # y * (1 - y)
        torch.mul(buffers.error, buffers.sigmoid_slope, out=grads[last])

        # Backward, last layer first; aten's threshold_backward is autograd's own ReLU backward, with out=.
        for i in range(last, -1, -1):
            layer, grad, alpha = self.layers[i], grads[i], scale if i == last else 1.0
            if layer.transposed:
                torch.addmm(layer.grad_w, acts[i].t(), grad, beta=0, alpha=alpha, out=layer.grad_w)
            else:
                torch.addmm(layer.grad_w, grad.t(), acts[i], beta=0, alpha=alpha, out=layer.grad_w)
            torch.addmv(layer.grad_b, grad.t(), buffers.ones, beta=0, alpha=alpha, out=layer.grad_b)
            if i > 0:
                torch.addmm(grads[i - 1], grad, layer.w_out_in, beta=0, alpha=alpha, out=grads[i - 1])
                if self.activations[i - 1] == "relu":
                    torch.ops.aten.threshold_backward.grad_input(grads[i - 1], acts[i], 0, grad_input=grads[i - 1])
        if self.mixed:
            self.flat.grad.copy_(self.grad_low)
        self.adam()
        if self.mixed:
            self.flat_low.copy_(self.flat)

    def adam(self) -> None:
        """One step of ``torch.optim.Adam(fused=True)`` at its defaults, on the flat weights."""
        adam([self.flat], [self.flat.grad], [self.exp_avg], [self.exp_avg_sq], [], [self.adam_steps], fused=True,
             foreach=None, capturable=False, differentiable=False, grad_scale=None, found_inf=None,
             has_complex=False, amsgrad=False, beta1=0.9, beta2=0.999, lr=self.lr, weight_decay=0.0, eps=1e-8,
             maximize=False)

    def moments(self) -> list[torch.Tensor]:
        return [self.exp_avg, self.exp_avg_sq]

    def set_lr(self, lr: float) -> None:
        self.lr = lr

    @torch.no_grad()
    def sync_model(self) -> None:
        """Write the trained weights back into the model's own parameters."""
        for (weight, bias), layer in zip(self.model_params, self.layers):
            weight.copy_(layer.master_w.t() if layer.transposed else layer.master_w)
            bias.copy_(layer.master_b)


@dataclass(frozen=True)
class _LayerViews:
    master_w: torch.Tensor  # the float32 weight Adam updates, in the storage layout
    master_b: torch.Tensor
    w_in_out: torch.Tensor  # the weight as the forward product reads it
    w_out_in: torch.Tensor  # as the backward product reads it
    b: torch.Tensor
    grad_w: torch.Tensor  # in the weight's storage layout
    grad_b: torch.Tensor
    transposed: bool  # stored (in, out) rather than nn.Linear's (out, in)


@dataclass(frozen=True)
class _Buffers:
    """Activations and their gradients for ``n`` samples, allocated once."""

    n: int
    target: torch.Tensor  # the batch in float32: the loss's reference
    acts: list[torch.Tensor]  # input, then each layer's output, in the compute dtype
    grads: list[torch.Tensor]  # gradient wrt each layer's pre-activation output
    error: torch.Tensor  # y - x in float32, the loss's terms
    squared: torch.Tensor  # their squares, float32
    sigmoid_slope: torch.Tensor
    ones: torch.Tensor

    @classmethod
    def allocate(cls, n: int, widths: list[int], dtype: torch.dtype, device: torch.device) -> _Buffers:
        def empty(width: int, of: torch.dtype = dtype) -> torch.Tensor:
            return torch.empty(n, width, dtype=of, device=device)

        target = empty(widths[0], torch.float32)
        acts = [target if dtype == torch.float32 else empty(widths[0])] + [empty(w) for w in widths[1:]]
        grads = [empty(w) for w in widths[1:]]
        # In float32 the error is computed straight into the last gradient's buffer: no buffer, no copy.
        error = grads[-1] if dtype == torch.float32 else empty(widths[-1], torch.float32)
        return cls(n, target, acts, grads, error, empty(widths[-1], torch.float32), empty(widths[-1]),
                   torch.ones(n, dtype=dtype, device=device))

    def first(self, n: int) -> _Buffers:
        """Views of the first ``n`` rows, for a short last batch."""
        return _Buffers(n, self.target[:n], [a[:n] for a in self.acts], [g[:n] for g in self.grads],
                        self.error[:n], self.squared[:n], self.sigmoid_slope[:n], self.ones[:n])
