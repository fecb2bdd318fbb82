"""Rehearsal of past synthetic samples while a generator drifts (issue 18, "generative
pseudo-replay"): the student of :func:`models.datafree.dafl.train_dafl` is trained on each new
generated batch plus a batch rehearsed from the past.

- :class:`VAEReplay` trains a small VAE continually (one step per generated batch) and rehearses
  on samples decoded from its prior: memory is the VAE's parameters, constant.
- :class:`StoreReplay` keeps every generated image and rehearses on a uniform draw of them:
  memory grows with every batch (the baseline the VAE replaces).

Both expose ``observe(x)``, ``sample(n, gen)`` and ``nbytes`` (float32 bytes held).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VAE", "vae_loss", "VAEReplay", "StoreReplay"]


class VAE(nn.Module):
    """MLP VAE on 8×8 images in [0, 1]: 64 → ``hidden`` → (μ, log σ²) of ``latent`` dims →
    ``hidden`` → 64 (sigmoid).

    Parameters
    ----------
    latent : int
        Latent dimensions.
    hidden : int
        Hidden units of encoder and decoder.
    """

    def __init__(self, latent: int = 8, hidden: int = 128) -> None:
        super().__init__()
        self.latent = latent
        self.enc = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        self.dec = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 64), nn.Sigmoid())

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, log σ²)``, each ``(B, latent)``."""
        mu, logvar = self.enc(x).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 1, 8, 8)`` of latents ``(B, latent)``."""
        return self.dec(z).view(-1, 1, 8, 8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction (sampled latent), μ, log σ²."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return self.decode(z), mu, logvar


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Negative ELBO per image (nats): pixel binary cross-entropy summed over the 64 pixels plus
    ``KL(N(μ, σ²) ‖ N(0, 1))``, averaged over the batch."""
    bce = F.binary_cross_entropy(recon, x, reduction="sum") / len(x)
    kl = -0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum() / len(x)
    return bce + kl


class VAEReplay:
    """A VAE trained continually on the generated batches; rehearsal draws decode prior samples.

    Parameters
    ----------
    seed : int
        VAE initial weights.
    steps : int
        Adam steps per observed batch.
    lr : float
        Adam learning rate.
    """

    def __init__(self, seed: int, steps: int = 1, lr: float = 2e-3) -> None:
        torch.manual_seed(seed)
        self.vae = VAE()
        self.steps = steps
        self.opt = torch.optim.Adam(self.vae.parameters(), lr=lr)
        self.seen = 0

    def observe(self, x: torch.Tensor) -> None:
        """Train on a generated batch ``(B, 1, 8, 8)`` (detached)."""
        self.vae.train()
        for _ in range(self.steps):
            loss = vae_loss(x, *self.vae(x))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.seen += len(x)

    @torch.no_grad()
    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor | None:
        """``n`` decoded prior samples; None before any batch was observed."""
        if not self.seen:
            return None
        self.vae.eval()
        return self.vae.decode(torch.randn(n, self.vae.latent, generator=gen))

    @property
    def nbytes(self) -> int:
        """float32 bytes of the VAE's parameters."""
        return sum(p.numel() for p in self.vae.parameters()) * 4


class StoreReplay:
    """Every generated image kept; rehearsal draws uniformly among them."""

    def __init__(self) -> None:
        self.images: list[torch.Tensor] = []

    def observe(self, x: torch.Tensor) -> None:
        """Keep a generated batch."""
        self.images.append(x.detach().clone())

    def sample(self, n: int, gen: torch.Generator) -> torch.Tensor | None:
        """``n`` stored images drawn uniformly with replacement; None when empty."""
        if not self.images:
            return None
        allx = torch.cat(self.images)
        return allx[torch.randint(len(allx), (n,), generator=gen)]

    @property
    def nbytes(self) -> int:
        """float32 bytes of the stored images."""
        return sum(x.numel() for x in self.images) * 4
