"""GSA as the paper runs it: its classifier trained on a shadow model (Pang et al.,
PoPETs 2025; docs/science.md).

The attacker trains a shadow model the way the target was trained, on data of the same
distribution that it holds (a disjoint split of the same dataset: ``DataConfig.shadow``),
knows which images the shadow saw, and fits its classifier on the shadow's gradient
features of its own members and non-members. The classifier then scores the target's
images: no target membership label is used, unlike the cross-fitted ``gsa``. The audit
runs it on the cases that train a shadow model (``CaseConfig.shadow``: the paper tier's
PathMNIST cases, where the training split leaves the images for one).
"""

from __future__ import annotations

import torch

from benchmark.attacks.base import Shadow
from benchmark.attacks.gsa import GSAAttack
from benchmark.errors import ConfigError
from benchmark.measures.membership_scores import shadow_fitted_scores


class ShadowGSAAttack(GSAAttack):
    name = "gsa-shadow"
    version = "1"
    label = "GSA (shadow)"
    description = (
        "per-layer norms of the loss gradient at several t (white box), a classifier "
        "trained on a shadow model's own members and non-members (higher = member)"
    )
    trains_on_shadow = True
    defaults = {"times": GSAAttack.defaults["times"], "c": GSAAttack.defaults["c"]}
    quick_params = {"times": (0.1,)}

    @property
    def queries_per_image(self) -> int:
        # its own images and as many of the shadow's: a forward and a backward per level
        return 2 * 2 * len(self.params["times"])

    def score_sets(
        self,
        model,
        members,
        nonmembers,
        seed=0,
        device="cpu",
        progress=False,
        *,
        shadow: Shadow,  # run_attack refuses a missing one, naming the fix
        **_,
    ):
        if min(shadow.members.shape[0], shadow.nonmembers.shape[0]) < 2:
            raise ConfigError(
                f"GSA (shadow) needs at least 2 shadow members and 2 shadow non-members, "
                f"got {shadow.members.shape[0]} and {shadow.nonmembers.shape[0]}"
            )
        features = self.gradient_features
        sm = features(
            shadow.model, shadow.members, seed + 2, device, progress, "GSA: shadow members"
        )
        sh = features(
            shadow.model, shadow.nonmembers, seed + 3, device, progress, "GSA: shadow non-members"
        )
        fm = features(model, members, seed, device, progress, "GSA: members")
        fh = features(model, nonmembers, seed + 1, device, progress, "GSA: non-members")
        if sm.shape[1] != fm.shape[1]:
            raise ConfigError(
                f"GSA (shadow): the shadow model {shadow.model.key!r} has {sm.shape[1]} "
                f"parameter tensors and the target {model.key!r} {fm.shape[1]}; a shadow is "
                f"the target's architecture trained on other data"
            )
        m, h = shadow_fitted_scores(
            sm.numpy(), sh.numpy(), fm.numpy(), fh.numpy(), float(self.params["c"])
        )
        return torch.from_numpy(m), torch.from_numpy(h)
