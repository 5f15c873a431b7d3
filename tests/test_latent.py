"""The latent family: its sampler against diffusers' LDMPipeline on the same weights,
its folders, its autoencoder's training and leakage, and what it refuses."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DDIMScheduler, LDMPipeline
from sklearn.metrics import roc_auc_score

from benchmark.cache import Cache
from benchmark.config import AutoencoderConfig, ModelConfig, SamplerConfig, TrainConfig
from benchmark.data.base import ImageDataset
from benchmark.errors import CheckpointError, ConfigError
from benchmark.metrics.autoencoder import reconstruction_errors
from benchmark.model_audit import folder_family, model_shape
from benchmark.models.base import TrainedModel, seeded_latents
from benchmark.models.ddpm import DDIMFamily
from benchmark.models.latent import LatentFamily, autoencoder_key, train_autoencoder
from benchmark.models.training import build_network
from benchmark.models.unet import MARKER

SHAPE = (1, 16, 16)
TINY_LATENT = ModelConfig(
    family="latent", block_out_channels=(8, 16), norm_num_groups=4,
    autoencoder=AutoencoderConfig(block_out_channels=(8, 8), latent_channels=2,
                                  norm_num_groups=4, steps=30, batch_size=16),
)  # fmt: skip


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((n, *SHAPE), generator=g) * 2 - 1).clamp(-1, 1)


def _dataset(n_train: int = 16, n_heldout: int = 16) -> ImageDataset:
    zeros = torch.zeros(max(n_train, n_heldout), dtype=torch.long)
    return ImageDataset(
        name="noise", train=_images(n_train, 0), train_labels=zeros[:n_train],
        heldout=_images(n_heldout, 1), heldout_labels=zeros[:n_heldout],
    )  # fmt: skip


@pytest.fixture(scope="module")
def family_and_net():
    family = LatentFamily(TINY_LATENT)
    net = build_network(family, SHAPE, seed=0).eval()
    with torch.no_grad():  # a non-trivial denoiser and scale (random init zeroes the output)
        for p in net.unet.parameters():
            p.add_(0.05 * torch.randn_like(p))
        net.latent_scale.fill_(0.7)
    return family, net


def test_shapes_follow_the_autoencoder(family_and_net):
    family, net = family_and_net
    assert family.latent and family.latent_shape(SHAPE) == (2, 8, 8)
    z = family.encode(net, _images(3, 0))
    assert z.shape == (3, 2, 8, 8)
    assert family.decode(net, z).shape == (3, *SHAPE)
    assert family.denoiser(net) is net.unet
    assert DDIMFamily(TINY_LATENT).latent_shape(SHAPE) == SHAPE  # a pixel family: identity


@pytest.mark.parametrize("steps", [1, 10])
def test_sampler_matches_diffusers_ldm_pipeline(family_and_net, steps):
    """Our DDIM in latent space, then the decoder, against diffusers' own LDMPipeline
    (DDIMScheduler without clipping, latents divided by the autoencoder's
    scaling_factor before decoding) on the same weights and starting noise."""
    family, net = family_and_net
    seeds = [3, 4, 5]
    latents = seeded_latents(torch.tensor(seeds), family.latent_shape(SHAPE))
    with torch.no_grad():
        sampler = SamplerConfig(num_steps=steps, params={"clip_sample": False})
        ours, nfe = family.sample(net, latents, sampler)
    vae = net.vae
    vae.register_to_config(scaling_factor=float(net.latent_scale))
    scheduler = DDIMScheduler.from_config(family.scheduler().config, clip_sample=False)
    pipe = LDMPipeline(vqvae=vae, unet=net.unet, scheduler=scheduler)
    pipe.set_progress_bar_config(disable=True)
    ref = pipe(
        batch_size=3, generator=[torch.Generator().manual_seed(s) for s in seeds],
        num_inference_steps=steps, eta=0.0, output_type="np",
    ).images  # fmt: skip
    ref = torch.from_numpy(ref).permute(0, 3, 1, 2)
    assert nfe == steps
    assert ours.std() > 0.01, "the comparison must not be trivial"
    torch.testing.assert_close((ours / 2 + 0.5).clamp(0, 1), ref, atol=1e-5, rtol=0)


def test_the_plan_counts_the_latent_samplers_evaluations():
    """``memobench plan`` counts a sampler's NFE on a zero denoiser; a latent family's
    sampler also decodes, with a real autoencoder."""
    from benchmark.plan import sampler_nfe
    from benchmark.tiers import smoke_case

    family = LatentFamily(TINY_LATENT)
    case = replace(smoke_case("latent", 64), model=TINY_LATENT,
                   sampler=SamplerConfig(num_steps=7, params={"clip_sample": False}))  # fmt: skip
    assert sampler_nfe(family, case, SHAPE) == 7


def test_clipping_latents_is_refused(family_and_net):
    family, net = family_and_net
    with pytest.raises(ConfigError, match='"clip_sample": False'):
        family.sample(net, torch.zeros(1, 2, 8, 8), SamplerConfig(num_steps=2))


def test_a_folder_round_trips_and_is_read_as_latent(family_and_net, tmp_path):
    family, net = family_and_net
    family.save_pretrained(net, tmp_path / "ldm")
    assert folder_family(tmp_path / "ldm") == "latent"
    assert json.loads((tmp_path / "ldm" / "model_index.json").read_text())["_class_name"] == (
        "LDMPipeline"
    )
    loaded_family, loaded = LatentFamily.load_pretrained(tmp_path / "ldm")
    assert loaded_family.config.autoencoder.latent_channels == 2
    assert model_shape(loaded, tmp_path / "ldm") == (1, 16)
    latents = seeded_latents(torch.tensor([0, 1]), (2, 8, 8))
    sampler = SamplerConfig(num_steps=3, params={"clip_sample": False})
    with torch.no_grad():
        a, _ = family.sample(net, latents, sampler)
        b, _ = loaded_family.sample(loaded, latents, sampler)
    torch.testing.assert_close(a, b)
    # the pixel family refuses it, naming the family that reads it: by memobench's
    # marker, and in a plain diffusers folder by its autoencoder
    with pytest.raises(CheckpointError, match="model family 'latent'"):
        DDIMFamily.load_pretrained(tmp_path / "ldm")
    (tmp_path / "ldm" / MARKER).unlink()
    with pytest.raises(CheckpointError, match="--family latent"):
        DDIMFamily.load_pretrained(tmp_path / "ldm")


def test_broken_latent_folders_say_what_is_wrong(family_and_net, tmp_path):
    family, net = family_and_net
    with pytest.raises(CheckpointError, match="vqvae/"):
        LatentFamily.load_pretrained(tmp_path)
    family.save_pretrained(net, tmp_path / "m")
    cfg_file = tmp_path / "m" / "vqvae" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    cfg_file.write_text(json.dumps({**cfg, "_class_name": "VQModel"}))
    with pytest.raises(CheckpointError, match="VQModel"):
        LatentFamily.load_pretrained(tmp_path / "m")
    cfg_file.write_text(json.dumps({**cfg, "latent_channels": 3}))
    with pytest.raises(CheckpointError):
        LatentFamily.load_pretrained(tmp_path / "m")


def test_image_sides_the_autoencoder_cannot_halve_are_refused():
    family = LatentFamily(TINY_LATENT)
    with pytest.raises(ConfigError, match="not divisible by 2"):
        family.check_image_shape((1, 15, 15))
    family.check_image_shape(SHAPE)


def test_a_training_time_mitigation_is_refused_before_any_training(tmp_path):
    from benchmark.config import MitigationConfig

    dp = TrainConfig(mitigation=MitigationConfig("dpsgd", {"epsilon": 1.0}))
    with pytest.raises(ConfigError, match="autoencoder would still see"):
        LatentFamily(TINY_LATENT).prepare(_dataset(), dp, Cache(tmp_path))
    assert not any(tmp_path.rglob("*.pt"))


def test_the_autoencoder_trains_once_under_its_own_key(tmp_path):
    """The shared loop fits it (loss falls); the cached entry is reused; the latent scale
    makes the training latents unit-variance; another dataset is another key."""
    data, cache = _dataset(), Cache(tmp_path)
    cfg = TINY_LATENT.autoencoder
    first = train_autoencoder(cfg, data, cache, progress=False)
    again = train_autoencoder(cfg, data, cache, progress=False)
    assert again["latent_scale"] == first["latent_scale"] > 0
    assert first["stats"]["autoencoder_param_count"] > 0
    family = LatentFamily(TINY_LATENT)
    family.prepare(data, TrainConfig(), cache, progress=False)
    net = family.build_network(SHAPE)
    z = family.encode(net, data.train)
    assert abs(float(z.std()) - 1.0) < 1e-3
    other = replace(data, train=data.heldout, heldout=data.train)
    assert autoencoder_key(cfg, other) != autoencoder_key(cfg, data)


def test_the_autoencoder_attack_matches_scikit_learn(family_and_net):
    """The reconstruction-error attack's AUC is scikit-learn's on the same errors, and
    an autoencoder that reconstructs members better is found."""
    from benchmark.measures.membership_scores import score_attack

    family, net = family_and_net
    model = TrainedModel(family, net, "t", SHAPE)
    members, heldout = _images(20, 2), _images(20, 3)
    m, h = reconstruction_errors(model, members), reconstruction_errors(model, heldout)
    assert m.shape == (20,) and (m > 0).all()
    score = score_attack(-m.numpy(), -h.numpy())
    labels = np.r_[np.ones(20), np.zeros(20)]
    assert score.auc == pytest.approx(roc_auc_score(labels, -np.r_[m.numpy(), h.numpy()]))
    # members that are their own reconstructions: error 0, found at AUC 1
    exact = family.decode(net, family.encode(net, members)).clamp(-1, 1)
    m0 = reconstruction_errors(model, exact)
    h0 = reconstruction_errors(model, heldout)
    assert (m0 < h0.min()).all() or score_attack(-m0.numpy(), -h0.numpy()).auc > 0.9


# -- `memobench audit` on a latent model that memorized its 12 training digits ---------------
@pytest.fixture(scope="module")
def memorizing_ldm(tmp_path_factory):
    """A latent model trained on 12 digits until it copies them, saved as an LDMPipeline
    folder (which diffusers itself loads); its members, 120 held-out digits and 12 more
    it never saw, as PNG folders."""
    from benchmark.models.training import train
    from fixtures.user_model import digits_16, write_pngs

    root = tmp_path_factory.mktemp("ldm-user")
    digits = digits_16(144)
    members = torch.from_numpy(digits[:12]).float().div(127.5).sub(1).unsqueeze(1)
    cfg = ModelConfig(
        family="latent", block_out_channels=(16, 32), norm_num_groups=8,
        autoencoder=AutoencoderConfig(block_out_channels=(16, 16), steps=600, batch_size=12),
    )  # fmt: skip
    data = ImageDataset(name="twelve", train=members, train_labels=torch.zeros(12).long(),
                        heldout=members[:2], heldout_labels=torch.zeros(2).long())  # fmt: skip
    family = LatentFamily(cfg)
    family.prepare(data, TrainConfig(), Cache(root / "fit"), progress=False)
    steps = TrainConfig(steps=1500, batch_size=12, lr=2e-3, lr_schedule="cosine", ema_decay=0.99)
    net, _ = train(family, members, steps, root / "ckpt", progress=False)
    family.save_pretrained(net, root / "model")
    return {
        "model": root / "model",
        "members": write_pngs(digits[:12], root / "members"),
        "heldout": write_pngs(digits[12:132], root / "heldout"),
        "unseen": write_pngs(digits[132:144], root / "unseen"),
        "cache": root / "cache",
    }


def _audit_ldm(user, members, out):
    from benchmark.cli import main
    from benchmark.report.results import latest_records

    code = main(["audit", str(user["model"]), "--members", str(user[members]), "--heldout",
                 str(user["heldout"]), "-o", str(out), "--cache", str(user["cache"]),
                 "--device", "cpu", "--samples", "128", "--steps", "20",
                 "--fail-if", "members_reproduced > 0"])  # fmt: skip
    (record,) = latest_records([out / "results.json"]).values()
    return code, record


@pytest.mark.filterwarnings("ignore:Cannot initialize model with low cpu memory")
def test_a_memorizing_latent_model_is_flagged_and_its_autoencoder_too(memorizing_ldm, tmp_path):
    """No --family: the folder's autoencoder picks the latent family. The reproductions,
    the loss attack on the latent denoiser and the autoencoder's own attack all find the
    12 members; the gate fails."""
    LDMPipeline.from_pretrained(
        memorizing_ldm["model"]
    )  # a diffusers folder, as diffusers reads it
    code, record = _audit_ldm(memorizing_ldm, "members", tmp_path / "audit")
    assert code == 1 and record["family"] == "latent"
    assert record["members_reproduced"] >= 3, record["members_reproduced"]
    assert record["mia_loss_weights_auc"] > 0.9
    assert record["autoencoder_mia_auc"] > 0.9
    assert record["autoencoder_mse_members"] < record["autoencoder_mse_heldout"]


@pytest.mark.filterwarnings("ignore:Cannot initialize model with low cpu memory")
def test_digits_the_latent_model_never_saw_show_nothing(memorizing_ldm, tmp_path):
    code, record = _audit_ldm(memorizing_ldm, "unseen", tmp_path / "audit")
    assert code == 0
    assert record["members_reproduced"] == 0
    assert record["mia_loss_weights_auc"] < 0.9 and record["autoencoder_mia_auc"] < 0.9
