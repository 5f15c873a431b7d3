"""Audit a model memobench did not train, on the images it was trained on.

``audit_model`` is what ``memobench audit MODEL --members DIR --heldout DIR`` runs:
it loads the user's checkpoint through its family (a diffusers ``DDPMPipeline`` /
``DDIMPipeline`` folder, or a bare ``UNet2DModel`` folder, for the ``ddim``
family), reads the members and held-out images as the model takes them
(``benchmark.data.folders``: the stated fit rule), audits them with the same
``run_case`` every suite case goes through, and ranks every member by its own
risk (``benchmark.measures.image_risk``): reproduced by a sample, or flagged by
the loss membership attack at 1% false-positive rate.

Nothing is drawn or split: the members are exactly the images given as members.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from benchmark import registry
from benchmark.attacks.base import get_attack
from benchmark.audit import AuditResult, run_case
from benchmark.config import CaseConfig, DataConfig, MitigationConfig, TrainConfig
from benchmark.data.base import ImageDataset
from benchmark.data.folders import FitRule, ImageSet, count_images, read_images, shared_images
from benchmark.errors import CheckpointError, ConfigError, DataError
from benchmark.measures.features import EncoderFeatures
from benchmark.measures.image_risk import MemberRisk, rank_members
from benchmark.models.base import TrainedModel
from benchmark.record import (
    AUDITED_IMAGES,
    CASE_ID,
    MEMBERS_AUDITED,
    MEMBERS_IDENTIFIABLE,
    MEMBERS_REPRODUCED,
)
from benchmark.report.thumbnails import case_record
from benchmark.session import Session

RISK_ATTACK = "loss"  # the membership score each member's risk is ranked by
RISK_FPR = 0.01  # "identifiable": flagged by an attacker accepting 1% false positives
DEFAULT_SAMPLES = 1024


@dataclass
class ModelAudit:
    """A user's model audited on its members and held-out images.

    Attributes:
        result: the audit (``run_case``): samples and every metric.
        record: the results record (the audit's metrics, its pictures, the images' sources
            and the member counts of the risk ranking).
        members, heldout: the images as the model took them, with their file names.
        risks: every member's risk, riskiest first.
        rule: how the images were brought to the model's size.
        model_path: the audited model's folder.
    """

    result: AuditResult
    record: dict[str, Any]
    members: ImageSet
    heldout: ImageSet
    risks: list[MemberRisk]
    rule: FitRule
    model_path: str


def folder_family(folder: Path) -> str:
    """The built-in family that reads a diffusers folder: ``latent`` where it holds an
    autoencoder (``vqvae/`` or ``vae/``, diffusers' LDMPipeline layout), else ``ddim``."""
    return "latent" if any((folder / d).is_dir() for d in ("vqvae", "vae")) else "ddim"


def model_shape(net: torch.nn.Module, folder: Path) -> tuple[int, int]:
    """(channels, size) of the images a loaded network makes, from its config (a latent
    model's: its autoencoder's channels, its UNet's side times the autoencoder's factor)."""
    vae, unet = getattr(net, "vae", None), getattr(net, "unet", None)
    if vae is not None and unet is not None:
        _, side = model_shape(unet, folder)
        return vae.config.in_channels, side * 2 ** (len(vae.config.block_out_channels) - 1)
    cfg = getattr(net, "config", None)
    channels = getattr(cfg, "in_channels", None)
    out = getattr(cfg, "out_channels", channels)
    if out != channels:
        raise CheckpointError(
            f"{folder}: the network takes {channels} channel(s) and returns {out} (a learned "
            f"variance?); memobench audits networks that predict one value per input channel"
        )
    size = getattr(cfg, "sample_size", None)
    if isinstance(size, list | tuple):
        if len(set(size)) != 1:
            raise CheckpointError(
                f"{folder}: the model makes {size[0]}x{size[1]} images; memobench audits "
                f"square images"
            )
        size = size[0]
    if not isinstance(channels, int) or not isinstance(size, int):
        raise CheckpointError(
            f"{folder}: the network's config gives no in_channels and sample_size, so the "
            f"image size is unknown; save it with diffusers' save_pretrained"
        )
    return channels, size


def weights_digest(net: torch.nn.Module) -> str:
    """A hash of the network's weights and config: a model saved again into the same
    folder after more training, or with an edited config, is another model with audits
    of its own."""
    h = hashlib.sha256()
    config = getattr(net, "config", None)
    if config is not None:
        h.update(json.dumps(dict(config), sort_keys=True, default=str).encode())
    for name, tensor in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def changes_training(mitigation: str) -> bool:
    """Whether the registered ``mitigation`` acts while the model trains (DP-SGD): an
    audit of a trained model cannot apply it."""
    train = TrainConfig()
    return registry.mitigations.get(mitigation)().train_config(train) != train


def read_split(
    members: str | Path, heldout: str | Path, rule: FitRule, progress: bool = False
) -> tuple[ImageSet, ImageSet]:
    """The members and held-out images under ``rule``, refused when they share a picture.

    Raises:
        DataError: either set cannot be read, has fewer than 2 images, or an image is
            both a member and held-out (how many, and the first pair).
    """
    # the memory check counts both sets, which the audit holds together
    m = read_images(members, rule, "--members", progress=progress, others=count_images(heldout))
    h = read_images(heldout, rule, "--heldout", progress=progress, others=len(m))
    for what, images in (("--members", m), ("--heldout", h)):
        if len(images) < 2:
            raise DataError(
                f"{what} {images.source}: {len(images)} image; the audit compares members with "
                f"held-out images and needs at least 2 of each"
            )
    both = shared_images(m, h)
    if both:
        first = both[0]
        raise DataError(
            f"{len(both)} held-out image(s) are also members (same pixels after the fit rule; "
            f"first: {first[0]} in --members is {first[1]} in --heldout); held-out images must "
            f"be images the model never saw: remove them from --heldout"
        )
    return m, h


def audit_model(
    model_path: str | Path,
    members: str | Path,
    heldout: str | Path,
    session: Session,
    *,
    family: str | None = None,
    fit: str = "resize",
    n_gen: int = DEFAULT_SAMPLES,
    steps: int | None = None,
    mitigation: str = "none",
    seed: int = 0,
) -> ModelAudit:
    """Audit the checkpoint in ``model_path`` on ``members`` (the images it was trained on)
    and ``heldout`` (images of the same kind it never saw).

    Args:
        model_path: the model's folder, as its family's ``load_pretrained`` reads it.
        members, heldout: folders of images, or ``.npz`` files (``file.npz:key``).
        session: the run's settings and cache (``Session``).
        family: the registered model family that reads the folder (default: ``latent``
            for a folder with an autoencoder, ``vqvae/`` or ``vae/``, else ``ddim``).
        fit: how images reach the model's size (``FitRule``: resize, center-crop, exact).
        n_gen: samples to generate; steps: the sampler's steps (default: the family's).
        mitigation: a sampling-time mitigation to audit the model under.

    Raises:
        CheckpointError: the folder is not a model the family reads.
        DataError: the images cannot be read or brought to the model's size.
        ConfigError: a bad count, or a mitigation that changes training.
    """
    if n_gen < 2:
        raise ConfigError(f"--samples must be >= 2, got {n_gen}")
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {steps}")
    folder = Path(model_path).expanduser()
    family_cls = registry.models.get(family or folder_family(folder))
    if changes_training(mitigation):  # before any work: a wrong name or kind stops here
        raise ConfigError(
            f"mitigation {mitigation!r} changes how the model is trained; an audit of a "
            f"trained model can only apply a sampling-time mitigation (memobench list)"
        )
    if session.settings.feature_encoder:  # a file that is not TorchScript stops here
        EncoderFeatures(session.settings.feature_encoder, session.settings.feature_space())
    fam, net = family_cls.load_pretrained(folder)
    channels, size = model_shape(net, folder)
    rule = FitRule(size=size, channels=channels, fit=fit)
    m, h = read_split(members, heldout, rule, progress=session.progress)

    dataset = ImageDataset(
        name="images",
        train=m.as_float().contiguous(),
        train_labels=torch.zeros(len(m), dtype=torch.long),
        heldout=h.as_float().contiguous(),
        heldout_labels=torch.zeros(len(h), dtype=torch.long),
    )
    # named by content (the case id appends n_train: "ddim-images-<hash>-64-none")
    data_cfg = DataConfig(name=f"images-{dataset.fingerprint()}-", n_train=len(m), n_heldout=len(h))
    session.add_dataset(data_cfg, dataset)
    digest = weights_digest(net)
    model = TrainedModel(
        fam,
        net.eval(),
        f"pretrained-{digest}",
        (channels, size, size),
        {
            "reused": True,
            "source": f"pretrained: {folder}",
            "param_count": sum(p.numel() for p in net.parameters()),
        },
    )
    _, _, sampler = family_cls.smoke_configs()
    if steps is not None:
        sampler = replace(sampler, num_steps=steps)
    case = CaseConfig(
        data=data_cfg,
        model=fam.config,
        sampler=sampler,
        mitigation=MitigationConfig(mitigation),
        n_gen=n_gen,
        seed=seed,
    )
    result = run_case(case, session, model=model)
    risks = member_risks(result, model, session, m, seed)
    record = case_record(result, tier="audit")
    # the folder's name, the weights and the images: two audits share an id only when all
    # three do (the leaderboard and the gate keep the latest record of an id)
    ident = f"{digest[:8]}-{dataset.fingerprint()[:8]}"
    record[CASE_ID] = f"audit:{folder.resolve().name}-{ident}-{case.mitigation.name}"
    record[AUDITED_IMAGES] = {
        "model": str(folder),
        "members": m.source,
        "heldout": h.source,
        "n_members": len(m),
        "n_heldout": len(h),
        "fit": rule.describe(),
        "notes": sorted({*m.notes, *h.notes})
        + (
            [
                f"{len(m) - len(risks)} member file(s) repeat another member's picture; each "
                f"picture is ranked once"
            ]
            if len(risks) < len(m)
            else []
        ),
    }
    record[MEMBERS_AUDITED] = len(risks)
    record[MEMBERS_REPRODUCED] = sum(r.reproduced for r in risks)
    record[MEMBERS_IDENTIFIABLE] = sum(r.identifiable(RISK_FPR) for r in risks)
    return ModelAudit(result, record, m, h, risks, rule, str(folder))


def member_risks(
    result: AuditResult,
    model: TrainedModel,
    session: Session,
    members: ImageSet,
    seed: int = 0,
) -> list[MemberRisk]:
    """Every distinct member picture ranked by risk: its nearest sample's Carlini ratio,
    and its ``RISK_ATTACK`` membership score's p-value among all held-out images' scores.

    A picture given twice among the members is ranked once (under its first file): two
    equal members would make every copy of it as near its second-nearest member as its
    nearest, and Carlini's ratio could never call it reproduced."""
    data = result.data
    first: dict[str, int] = {}
    keep = [i for i, d in enumerate(members.hashes()) if first.setdefault(d, i) == i]
    attack = get_attack(RISK_ATTACK)
    m, h = attack.score_sets(
        session.fast(model),
        data.train[keep],
        data.heldout,
        seed=seed,
        batch_size=session.batch_size(model, 256),
        device=session.device,
        progress=session.progress,
    )
    ranked = rank_members(
        result.samples.images, data.train[keep], m.numpy(), h.numpy(), device=session.device
    )
    return [replace(r, index=keep[r.index]) for r in ranked]
