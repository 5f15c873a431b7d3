"""The shared small-classifier loop (``benchmark.fitting``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.errors import ConfigError
from benchmark.fitting import fit_classifier


def _problem(seed: int):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 2, generator=gen)
    y = (x[:, 0] - 0.5 * x[:, 1] > 0).float()
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 1))

    def batch_loss():
        idx = torch.randint(0, 512, (64,), generator=gen)
        return F.binary_cross_entropy_with_logits(net(x[idx]).squeeze(1), y[idx])

    return net, batch_loss, x, y


@pytest.mark.parametrize("cosine", [True, False])
def test_fits_a_separable_problem_and_returns_in_eval_mode(cosine):
    net, batch_loss, x, y = _problem(0)
    first = float(batch_loss())
    last = fit_classifier(net, batch_loss, steps=300, lr=1e-2, cosine=cosine, progress=False)
    assert last < first / 4
    assert not net.training
    with torch.no_grad():
        accuracy = ((net(x).squeeze(1) > 0).float() == y).float().mean()
    assert accuracy > 0.97


def test_the_same_seed_gives_the_same_weights():
    a, loss_a, _, _ = _problem(3)
    b, loss_b, _, _ = _problem(3)
    fit_classifier(a, loss_a, steps=20, lr=1e-2, progress=False)
    fit_classifier(b, loss_b, steps=20, lr=1e-2, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


@pytest.mark.parametrize(("steps", "lr", "match"), [(0, 1e-3, "steps"), (5, 0.0, "learning")])
def test_bad_settings_are_refused(steps, lr, match):
    net, batch_loss, _, _ = _problem(0)
    with pytest.raises(ConfigError, match=match):
        fit_classifier(net, batch_loss, steps=steps, lr=lr, progress=False)
