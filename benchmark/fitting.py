"""The one loop that fits memobench's small auxiliary classifiers.

C_SAF and C_ID (``detectors``), the dataset's feature classifier
(``metrics.features``) and CPSample's random-label classifier
(``mitigations.random_label_classifier``) differ in their networks and in how
a batch is drawn, never in how they are fitted: Adam, an optional cosine
learning-rate decay, a fixed number of steps, a progress bar, and the network
left in eval mode. Each caller passes a ``batch_loss`` that draws its batch
from the caller's generator and returns the loss, so the fit stays a pure
function of the seed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from benchmark.errors import ConfigError
from benchmark.progress import bar


def fit_classifier(
    net: nn.Module,
    batch_loss: Callable[[], torch.Tensor],
    *,
    steps: int,
    lr: float,
    cosine: bool = True,
    desc: str = "train classifier",
    progress: bool = True,
) -> float:
    """Fit ``net`` for ``steps`` Adam steps on ``batch_loss()``; returns the last loss.

    Args:
        net: the classifier; trained in place, returned in eval mode.
        batch_loss: draws one batch and returns its scalar loss (with gradients).
        steps: optimizer steps.
        lr: Adam's learning rate (its initial one with ``cosine``).
        cosine: anneal the learning rate to 0 over ``steps`` (``CosineAnnealingLR``).
        desc: the progress bar's label.
        progress: show the bar (see ``benchmark.progress``).
    """
    if steps < 1:
        raise ConfigError(f"{desc}: steps must be >= 1, got {steps}")
    if not lr > 0:
        raise ConfigError(f"{desc}: the learning rate must be > 0, got {lr}")
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps) if cosine else None
    net.train()
    with bar(total=steps, desc=desc, unit="step", enabled=progress) as pbar:
        for _ in range(steps):
            loss = batch_loss()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            pbar.update(1)
    net.eval()
    return float(loss.detach())
