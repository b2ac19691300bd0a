"""A variational auto-encoder (Kingma and Welling, "Auto-Encoding Variational Bayes", 2013).

The fully connected encoder gives, for each image, the mean and log-variance of a Gaussian over
codes. Training decodes a code drawn from it (the reparameterisation trick: mean + sigma * noise,
so the gradient flows through mean and sigma) and adds ``beta`` times the KL divergence from the
prior N(0, I) to the reconstruction loss, which makes codes drawn from that prior decode to digits.
Elsewhere (evaluate, embed) the code of an image is its mean: deterministic, as for other families.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core.dataset import PIXELS
from .base import AutoEncoder, Loss, mlp
from .losses import in_float32
from .sections import VAEParams


class VAE(AutoEncoder):
    kind = "vae"
    Params = VAEParams
    has_prior = True

    def __init__(self, code_dim: int, params: VAEParams) -> None:
        super().__init__(code_dim, params)
        self.beta = params.beta
        widths = [PIXELS, *params.hidden]
        self.encoder = mlp(widths, last_activation=nn.ReLU())
        self.mean = nn.Linear(widths[-1], code_dim)
        self.log_variance = nn.Linear(widths[-1], code_dim)
        self.decoder = mlp([code_dim, *widths[::-1]], last_activation=nn.Sigmoid())

    def posterior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(images)
        return self.mean(hidden), self.log_variance(hidden)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.posterior(images)[0]

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.decoder(codes)

    def objective_terms(self, images: torch.Tensor, loss: Loss, *, reconstruction: torch.Tensor | None = None,
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """The reconstruction loss of a code drawn from the posterior and KL(posterior || N(0, I)),
        each summed over the batch: the objective as trained, in evaluation too (drawn from
        ``generator``, so a rerun gives the same value). ``reconstruction``, the mean code's, is not
        what this objective decodes: it is ignored."""
        mean, log_variance = self.posterior(images)
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        code = mean + noise * (0.5 * log_variance).exp()
        return {"reconstruction": loss(self.decode(code), images), "kl": kl_divergence(mean, log_variance)}

    def combine(self, terms: dict[str, torch.Tensor]) -> torch.Tensor:
        """Reconstruction loss + beta x KL(posterior || N(0, I))."""
        return terms["reconstruction"] + self.beta * terms["kl"]


@in_float32
def kl_divergence(mean: torch.Tensor, log_variance: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)), summed: the paper's appendix B, in closed form."""
    return -0.5 * (1 + log_variance - mean.pow(2) - log_variance.exp()).sum()
