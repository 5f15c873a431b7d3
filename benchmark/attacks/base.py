"""The membership-attack interface and how an attack is run on a case.

An attack gives every image a score, higher meaning "more likely a member".
It declares what it needs (``needs``, a threat model of ``benchmark.attacks.threat``).
A query attack talks to the model only through the family's noise interface
(``predict_eps`` and its ``noise`` process), so it works on every family, and it
takes a guidance hook, so a mitigated model can be attacked as it is deployed
(eps-hat in place of eps_theta) as well as through its raw weights. A samples-only
attack reads the case's generated images instead (``score_sets``' ``samples``); an
attack that learns from part of the membership (GSA) overrides ``score_sets``. A
third-party attack subclasses ``MembershipAttack`` in one file and registers it
under the ``memobench.attacks`` entry-point group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from benchmark import registry
from benchmark.attacks.threat import DENOISER_API, check_threat_model
from benchmark.data.base import ImageDataset
from benchmark.errors import ConfigError
from benchmark.measures.membership_scores import (
    MIA_IMAGES_PER_SECOND,
    MIA_PARAMS,
    MIA_QUERIES,
    MIA_SCORES,
    MIA_SECONDS,
    AttackScore,
    check_member_sets,
    score_attack,
)
from benchmark.models.base import ModelFamily, TrainedModel
from benchmark.progress import bar
from benchmark.samplers.base import EpsFn, Guidance


class MembershipAttack:
    """Base class of attack plugins.

    Class attributes:
        name: registry name; results are recorded as ``mia_<name>_*``.
        defaults: the parameters and their default values; ``__init__`` refuses others.
        quick_params: parameters that cut the attack's queries (a rehearsal uses them).
        needs: the least an attacker must hold: ``weights``, ``denoiser-api`` (queries of
            eps_theta or the deployed eps-hat) or ``samples-only``.
        trains_on_shadow: learns on a shadow model (``Shadow``): ``score_sets`` gets it as
            ``shadow``, and the audit runs the attack only on cases that train one
            (``CaseConfig.shadow``).
    """

    name: ClassVar[str] = "base"
    needs: ClassVar[str] = DENOISER_API
    version: ClassVar[str] = "1"
    label: ClassVar[str] = "attack"
    description: ClassVar[str] = ""
    defaults: ClassVar[dict[str, Any]] = {}
    quick_params: ClassVar[dict[str, Any]] = {}
    trains_on_shadow: ClassVar[bool] = False

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            raise ConfigError(
                f"attack {self.name!r} has no parameter(s) {unknown}; it takes "
                f"{sorted(self.defaults)}"
            )
        self.params = {**self.defaults, **params}
        check_threat_model(self.needs, f"attack {self.name!r}'s needs")
        self.check_params()

    def check_params(self) -> None:
        """Raise ``ConfigError`` for a parameter value out of range."""

    @property
    def queries_per_image(self) -> int:
        """Network evaluations the attack spends on one image."""
        raise NotImplementedError

    def score_batch(
        self,
        family: ModelFamily,
        estimate: EpsFn,
        x0: torch.Tensor,
        generator: torch.Generator,
    ) -> torch.Tensor:
        """(B,) scores of images ``x0`` (B, C, H, W) in [-1, 1], as the family's ``encode``
        gives them (a latent family's latents); higher = member. ``estimate`` is the
        denoiser the attacker queries (``family.predict_eps(estimate, x, time)``): the
        network, with the mitigation's guidance inside under ``denoiser-api``."""
        raise NotImplementedError

    def scores(
        self,
        model: TrainedModel,
        images: torch.Tensor,
        guidance: Guidance | None = None,
        seed: int = 0,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        progress: bool = False,
        desc: str | None = None,
    ) -> torch.Tensor:
        """(N,) scores of ``images``; the noise the attack draws comes from ``seed``."""
        net = model.net.to(device).eval()
        estimate = model.family.noise_estimate(net, guidance)  # the guidance around it, once
        gen = torch.Generator(device=device).manual_seed(seed)
        out = []
        with bar(
            total=images.shape[0], desc=desc or f"attack {self.name}", unit="img", enabled=progress
        ) as pbar:
            for chunk in images.split(batch_size):
                with torch.no_grad():  # a guidance hook enables gradients for itself
                    x0 = model.family.encode(net, chunk.to(device))  # latents, if it has them
                    s = self.score_batch(model.family, estimate, x0, gen)
                out.append(s.detach().float().cpu())
                pbar.update(chunk.shape[0])
        scores = torch.cat(out)
        bad = (~torch.isfinite(scores)).nonzero().flatten()
        if bad.numel():
            raise FloatingPointError(
                f"attack {self.name!r}: non-finite score for {bad.numel()} image(s) (first: "
                f"index {int(bad[0])}); the model returned NaN/inf for them"
            )
        return scores

    def score_sets(
        self,
        model: TrainedModel,
        members: torch.Tensor,
        nonmembers: torch.Tensor,
        guidance: Guidance | None = None,
        samples: torch.Tensor | None = None,
        seed: int = 0,
        batch_size: int = 256,
        device: torch.device | str = "cpu",
        progress: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(member scores, non-member scores). A query attack scores each image on its
        own (``scores``); ``samples`` are the case's generated images, for attacks that
        need only them."""
        kw = dict(guidance=guidance, device=device, progress=progress, batch_size=batch_size)
        m = self.scores(model, members, seed=seed, desc=f"{self.name}: members", **kw)
        h = self.scores(model, nonmembers, seed=seed + 1, desc=f"{self.name}: non-members", **kw)
        return m, h


@dataclass(frozen=True)
class Shadow:
    """A shadow model: trained like the target on a disjoint split of the same data
    (``DataConfig.shadow``), with its own members and non-members to learn from."""

    model: TrainedModel
    members: torch.Tensor
    nonmembers: torch.Tensor


def per_image_error(a: torch.Tensor, b: torch.Tensor, p: float = 2.0) -> torch.Tensor:
    """(B,) mean |a - b|^p over each image's pixels."""
    return (a - b).abs().pow(p).flatten(1).mean(dim=1)


@dataclass
class AttackRun:
    """An attack's result on one case: its score and what it cost."""

    attack: MembershipAttack
    score: AttackScore
    seconds: float
    n_images: int
    member_scores: torch.Tensor
    nonmember_scores: torch.Tensor
    name: str = ""  # the record name (attack and threat model); default: the attack's

    def as_record(self) -> dict[str, Any]:
        name = self.name or self.attack.name
        return {
            **self.score.as_record(name),
            MIA_QUERIES(attack=name): self.attack.queries_per_image,
            MIA_SECONDS(attack=name): self.seconds,
            MIA_IMAGES_PER_SECOND(attack=name): self.n_images / max(self.seconds, 1e-9),
            MIA_PARAMS(attack=name): dict(self.attack.params),
            MIA_SCORES(attack=name): {
                "members": _plain(self.member_scores),
                "nonmembers": _plain(self.nonmember_scores),
            },
        }


def _plain(scores: torch.Tensor) -> list[float]:
    """Scores as JSON floats, exactly (a threshold recomputed from them is the attack's)."""
    return [float(v) for v in scores.detach().flatten().double().cpu().tolist()]


def membership_sets(
    data: ImageDataset, max_per_set: int | None = None, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Equal-size members (training images minus x_p) and non-members (held-out images).

    x_p is left out because SAF(x_p), not x_p, is what the model saw, and it is
    audited by the fingerprint. Both sets are cut to the smaller one's size (and to
    ``max_per_set``), choosing images at random with ``seed``.
    """
    keep = torch.ones(data.train.shape[0], dtype=torch.bool)
    if data.saf is not None:
        keep[data.saf.index] = False
    members, nonmembers = data.train[keep], data.heldout
    n = min(members.shape[0], nonmembers.shape[0])
    if max_per_set is not None:
        n = min(n, max_per_set)
    if n < 2:
        raise ConfigError(
            f"dataset {data.name!r} has {members.shape[0]} member candidates and "
            f"{nonmembers.shape[0]} held-out images; membership inference needs at least 2 of "
            f"each (raise n_heldout or n_train)"
        )
    gen = torch.Generator().manual_seed(seed)
    members = members[torch.randperm(members.shape[0], generator=gen)[:n]]
    nonmembers = nonmembers[torch.randperm(nonmembers.shape[0], generator=gen)[:n]]
    return members, nonmembers


def run_attack(
    attack: MembershipAttack,
    model: TrainedModel,
    members: torch.Tensor,
    nonmembers: torch.Tensor,
    guidance: Guidance | None = None,
    seed: int = 0,
    n_boot: int = 500,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    progress: bool = False,
    samples: torch.Tensor | None = None,
    name: str = "",
    shadow: Shadow | None = None,
) -> AttackRun:
    """Score members and non-members with ``attack`` and evaluate the separation.

    ``samples``: the generated images (a samples-only attack's input); ``name``: the
    record name of the run (``threat.run_name``), the attack's own by default;
    ``shadow``: the shadow model an attack that ``trains_on_shadow`` learns on.
    """
    check_member_sets(members, nonmembers)
    extra: dict[str, Any] = {}
    if attack.trains_on_shadow:
        if shadow is None:
            raise ConfigError(
                f"attack {attack.name!r} learns on a shadow model and none was given; run "
                f"it on a case that trains one (CaseConfig.shadow=True)"
            )
        extra["shadow"] = shadow
    start = time.perf_counter()
    m, h = attack.score_sets(
        model,
        members,
        nonmembers,
        guidance=guidance,
        samples=samples,
        seed=seed,
        batch_size=batch_size,
        device=device,
        progress=progress,
        **extra,
    )
    seconds = time.perf_counter() - start
    score = score_attack(m, h, n_boot=n_boot, seed=seed)
    return AttackRun(attack, score, seconds, 2 * members.shape[0], m, h, name)


def get_attack(name: str, **params: Any) -> MembershipAttack:
    return registry.attacks.get(name)(**params)
