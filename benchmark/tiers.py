"""The tiers and their cases, built from registry names so a plugin joins every suite.

One home for what a tier is: its name, its cases (``smoke_case``, ``paper_cases``),
its default number of samples, and the rehearsal that runs a tier's cases on the
CPU with every count scaled down (``Rehearsal``). Used by `suites/`, by
``memobench plan`` and by the scripts under `benchmarks/`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from benchmark import registry
from benchmark.config import (
    AutoencoderConfig,
    CaseConfig,
    DataConfig,
    DetectorConfig,
    MitigationConfig,
    ModelConfig,
    SamplerConfig,
    TrainConfig,
)
from benchmark.errors import ConfigError
from benchmark.speed import Speed

SMOKE, PAPER, VALIDATION, ALL = "smoke", "paper", "validation", "all"
TIERS = (SMOKE, PAPER, VALIDATION, ALL)
# what each tier's pytest marker means (``all`` runs every one)
TIER_MARKERS = {
    SMOKE: "CPU-sized case of the smoke tier (minutes on 2 cores)",
    PAPER: "reproduces a source paper's settings; needs --memobench-tier paper (or all)",
    VALIDATION: "a tuned setting checked on a model it was not tuned on (another seed and "
    "split; CPU, about 15 minutes); needs --memobench-tier validation (or all)",
}


def tier_runs(tier: str, marker: str) -> bool:
    """Whether a run of ``tier`` runs the cases marked ``marker`` (a name in TIER_MARKERS)."""
    return tier in (marker, ALL)


# Samples per smoke case. 1024 on the 64-digit models gives E|q| = 16: enough for
# |q| to tell a mitigation from `none` (measured 14 -> 1 or 2 under CPSample, where
# 256 samples gave 2 -> 0 or 1, within chance of each other).
SMOKE_N_GEN = 1024
PAPER_N_GEN = 50000  # the seed paper's Table 2 (its Table 1 drew 150000)
N_GEN_DEFAULT = {SMOKE: SMOKE_N_GEN, PAPER: PAPER_N_GEN, VALIDATION: SMOKE_N_GEN, ALL: SMOKE_N_GEN}

# The smoke tier's training-set sizes: a small set that memorizes, a large one that does not.
SMOKE_N_TRAIN = (64, 1024)


def detector_config(
    tier: str,
    rehearsal: Rehearsal | None = None,
    steps: int | None = None,
    min_accuracy: float | None = None,
) -> DetectorConfig:
    """C_SAF / C_ID settings of a tier: ResNet-50 for the paper tier (docs/science.md);
    ``steps`` and ``min_accuracy`` (the run's options) replace the tier's where given, a
    rehearsal's scaled counts and open gate where not."""
    config = DetectorConfig(arch="resnet50" if tier == PAPER else "small-resnet")
    if rehearsal:
        config = rehearsal.detector(config)
    if steps is not None:
        config = replace(config, steps=steps)
    if min_accuracy is not None:
        config = replace(config, min_accuracy=min_accuracy)
    return config


def suite_names(reg) -> list[str]:
    """Registered names whose plugin takes part in suites (``in_suites``), loaded lazily."""
    return [n for n in reg.names() if getattr(reg.get(n), "in_suites", True)]


# --memobench-seeds: how many models of each configuration a run trains and audits when
# the option is left out; the paper tier on a GPU trains three (its figures' spread
# across training seeds is part of the result), every other run one
PAPER_GPU_SEEDS = 3


def default_seeds(tier: str, device_type: str, rehearse: bool = False) -> int:
    """Seeds per configuration when ``--memobench-seeds`` is left out."""
    return PAPER_GPU_SEEDS if tier == PAPER and device_type == "cuda" and not rehearse else 1


def seeded(case: CaseConfig, seed: int) -> CaseConfig:
    """``case`` trained and sampled with seed ``seed`` (0: ``case`` itself); the split and
    x_p stay, so the models of one configuration differ only in their training and
    sampling randomness. Another seed is another case id (``~train1-seed1``)."""
    if seed < 0:
        raise ConfigError(f"a case's seed must be >= 0, got {seed}")
    if seed == 0:
        return case
    return replace(case, train=replace(case.train, seed=seed), seed=seed)


def seed_ids(seeds: int) -> list[str]:
    """The pytest ids of a run's seeds: none at one seed (node ids stay as they are),
    ``seed0`` ... ``seed<K-1>`` at K."""
    return [f"seed{k}" for k in range(seeds)] if seeds > 1 else []


def with_mitigation_training(case: CaseConfig) -> CaseConfig:
    """``case`` with the training its mitigation needs: a training-time mitigation (DP-SGD)
    names itself in ``case.train`` (``Mitigation.train_config``), so its model is trained
    through its hook and cached under its parameters. Idempotent."""
    mitigation = registry.mitigations.get(case.mitigation.name)(**case.mitigation.kwargs)
    train = mitigation.train_config(replace(case.train, mitigation=None))
    return case if train == case.train else replace(case, train=train)


SHADOW_SEED_OFFSET = 1000  # a shadow model's training seed: its case's, plus this


def shadow_training(case: CaseConfig) -> tuple[TrainConfig, DataConfig]:
    """How ``case``'s shadow model is trained: as the case is, on the shadow split of its
    data (``DataConfig.shadow``), from seeds of its own (an attacker has neither the
    target's initial weights nor its noise stream)."""
    train = replace(case.train, seed=case.train.seed + SHADOW_SEED_OFFSET)
    return train, replace(case.data, shadow=True)


def smoke_case(
    family: str,
    n_train: int,
    mitigation: str = "none",
    params=(),
    n_gen: int = SMOKE_N_GEN,
    dataset: str = "digits",
) -> CaseConfig:
    fam_cls = registry.models.get(family)
    model, train, sampler = fam_cls.smoke_configs()
    return with_mitigation_training(
        CaseConfig(
            # SAF on: the fingerprint audit (|q|, t*) runs on the same cached models.
            data=DataConfig(name=dataset, n_train=n_train, saf=True),
            model=model,
            train=train,
            sampler=sampler,
            mitigation=MitigationConfig(mitigation, params),
            n_gen=n_gen,
        )
    )


# -- the paper tier (Dombrowski & Kainz, 2023) ------------------------------------------
# Its switches on a GPU unless the run says otherwise: bf16 autocast for sampling, t* and
# the attacks (the solvers integrate in fp32; the smoke suite's test_smoke_speed checks
# bf16 against fp32 on the memorizing model) and TF32 for what stays in fp32.
# --memobench-precision fp32 --memobench-no-tf32 is strict fp32.
PAPER_GPU_SPEED = Speed(precision="bf16", tf32=True)
PATHMNIST_N = (1000, 5000, 10000, 20000, 50000)  # its Table 1
# Table 1 cases that also train a shadow model for the paper's GSA (CaseConfig.shadow):
# PathMNIST's 89996 training images leave a disjoint shadow split there (Table 2 trains
# on whole training splits and leaves none); the smallest, where the paper's model
# copies, and one where it no longer does; each costs one more paper model.
PATHMNIST_SHADOW_N = (1000, 5000)
# Table 2: dataset -> N_train (the full MedMNIST training split)
TABLE2 = {
    "breastmnist": 546,
    "retinamnist": 1080,
    "pneumoniamnist": 4708,
    "bloodmnist": 11959,
    "organsmnist": 13940,
    "chestmnist": 78468,
}
# score_sde's DDPM-style UNet at the paper's width: 25.3M parameters, attention at the
# lowest resolution; 28 px images are padded to 32 inside the network (models/unet.py).
PAPER_MODEL = dict(
    block_out_channels=(64, 128, 256, 256), layers_per_block=2, attention=True, norm_num_groups=32
)
PAPER_TRAIN = TrainConfig(
    steps=30000, batch_size=128, lr=2e-4, warmup_steps=1000, ema_decay=0.9999,
    checkpoint_every=2000,
)  # fmt: skip


# The latent family's paper case: PneumoniaMNIST at 64 px (MedMNIST+) on its full training
# split, an autoencoder of factor 4 to 4 x 16 x 16 latents (1.3M parameters; the LDM
# paper's KL-f4 shape at this size), and the paper's UNet on the latents.
LATENT_PAPER = ("pneumoniamnist_64", 4708)
PAPER_AUTOENCODER = AutoencoderConfig(
    block_out_channels=(64, 128, 128), latent_channels=4, layers_per_block=2,
    norm_num_groups=32, steps=20000, batch_size=64, lr=1e-4,
)  # fmt: skip


def paper_case(family: str, dataset: str, n_train: int, n_gen: int = PAPER_N_GEN) -> CaseConfig:
    latent = registry.models.get(family).latent
    return CaseConfig(
        data=DataConfig(name=dataset, n_train=n_train, saf=True),
        model=ModelConfig(
            family=family, **PAPER_MODEL, autoencoder=PAPER_AUTOENCODER if latent else None
        ),
        train=PAPER_TRAIN,
        sampler=registry.models.get(family).paper_sampler(),
        n_gen=n_gen,
        shadow=dataset == "pathmnist" and n_train in PATHMNIST_SHADOW_N,
    )


PAPER_SUITE = "suites/test_paper_fingerprint.py"


def pixel_families() -> list[str]:
    """The suite families that diffuse pixels: the paper's Tables 1 and 2 run on them."""
    return [f for f in suite_names(registry.models) if not registry.models.get(f).latent]


def latent_families() -> list[str]:
    """The suite families that diffuse an autoencoder's latents: one paper case each."""
    return [f for f in suite_names(registry.models) if registry.models.get(f).latent]


def paper_cases(n_gen: int = PAPER_N_GEN, seeds: int = 1) -> list[tuple[str, CaseConfig]]:
    """Every paper case with its pytest node id: Table 1 (PathMNIST) then Table 2 for each
    pixel family, the MedMNIST+ case for each latent family; at ``seeds`` > 1 each of them
    once per seed (``[ddim-1000-seed2]``, as ``--memobench-seeds`` parametrizes them)."""
    cases = _paper_cases(n_gen)
    if seeds <= 1:
        return cases
    return [
        (f"{node[:-1]}-{tag}]", seeded(case, k))
        for node, case in cases
        for k, tag in enumerate(seed_ids(seeds))
    ]


def _paper_cases(n_gen: int) -> list[tuple[str, CaseConfig]]:
    out = []
    for f in latent_families():
        d, n = LATENT_PAPER
        node = f"{PAPER_SUITE}::test_latent_medmnist_plus[{f}-{d}]"
        out.append((node, paper_case(f, d, n, n_gen)))
    for f in pixel_families():
        for n in PATHMNIST_N:
            node = f"{PAPER_SUITE}::test_pathmnist_table1[{f}-{n}]"
            out.append((node, paper_case(f, "pathmnist", n, n_gen)))
        for d, n in TABLE2.items():
            out.append(
                (f"{PAPER_SUITE}::test_medmnist_table2[{f}-{d}]", paper_case(f, d, n, n_gen))
            )
    return out


def shard_index(ordered_ids: list[str], node_id: str, n_shards: int) -> int:
    """The shard (1..N) a benchmark case runs in under ``--memobench-shard K/N``:
    round-robin over the selected cases' node ids in sorted order, so runners agree."""
    return ordered_ids.index(node_id) % n_shards + 1


# -- the rehearsal ---------------------------------------------------------------------
@dataclass(frozen=True)
class AuditCounts:
    """How much the audit of one case measures; the defaults are the full tiers'.

    Attributes:
        tstar_m: M, trajectories per t* level (docs/science.md, the fingerprint).
        tstar_step: spacing of the t* grid (0.99, 0.98, ... for 0.01).
        mia_max_per_set: members and non-members per membership attack, at most.
        nll_max_per_set: images per set whose likelihood is computed, at most.
        nll_tol: tolerance of the likelihood's adaptive ODE solve.
        quick_attacks: run each attack with its ``quick_params`` (fewer queries per image).
        feature_steps: training steps of the dataset's feature classifier (FID, replication).
        tstar_strategy: ``adaptive`` (an exact top-down scan that stops at t*) or
            ``exhaustive`` (q_M(t) on the whole grid, all M trajectories per level: the
            seed paper's Fig. 6 curve); both give the same t*.
        tstar_scan_budget: share of the exhaustive NFE the adaptive scan may spend
            before it brackets and bisects; 1 (every case of a run the same, exact).
    """

    tstar_m: int = 16
    tstar_step: float = 0.01
    mia_max_per_set: int = 512
    nll_max_per_set: int = 64
    nll_tol: float = 1e-5
    quick_attacks: bool = False
    feature_steps: int = 800
    tstar_strategy: str = "adaptive"
    tstar_scan_budget: float = 1.0

    def __post_init__(self) -> None:
        # refused here, before a run trains and samples, not in the middle of an audit
        if not 0 < self.tstar_scan_budget <= 1:
            raise ConfigError(
                f"AuditCounts.tstar_scan_budget is the share of the exhaustive t* search's "
                f"NFE the exact scan may spend, in (0, 1]; got {self.tstar_scan_budget} "
                f"(1, the default, scans exactly)"
            )


def audit_counts(tier: str) -> AuditCounts:
    """What each audit of a tier measures. The smoke tier computes the NLL on 32 members
    and 32 held-out images (the full counts' 64 + 64 took 4 x 30-50 s of its 2-core
    budget; its 64-digit gap, 2.0 bits/dim with a 95% interval of +-0.1 at 63 + 63, needs
    no more to be told from the 1024-digit model's 0.05)."""
    return AuditCounts(nll_max_per_set=32) if tier in (SMOKE, VALIDATION) else AuditCounts()


@dataclass(frozen=True)
class Rehearsal:
    """A tier's cases end to end on the CPU, scaled down in the counts and nothing else.

    The same suites, fixtures, networks (the paper's 25M-parameter UNet, ResNet-50
    detectors), audit, attacks, results file and leaderboard run as on a GPU runner,
    with a few training steps, a handful of samples and short t* grids, so a break
    anywhere on the GPU path shows on a 2-core CPU in minutes. The detectors' accuracy
    gate is off (``min_accuracy`` 0): a ResNet-50 trained for two steps is no detector,
    and the gate is a verdict on the science, which a rehearsal does not measure.
    """

    train_steps: int = 2
    batch_size: int = 4
    sampler_steps: int = 3
    n_gen: int = 8  # the run's N_gen under a rehearsal unless --memobench-n-gen says otherwise
    detector_steps: int = 2
    detector_batch: int = 8
    detector_val: int = 20
    audit: AuditCounts = field(
        default_factory=lambda: AuditCounts(
            tstar_m=2,
            tstar_step=0.25,
            mia_max_per_set=4,
            nll_max_per_set=2,
            nll_tol=1e-1,
            quick_attacks=True,
            feature_steps=2,
        )
    )

    def case(self, case: CaseConfig) -> CaseConfig:
        """``case`` with its counts scaled: training steps and batch (an autoencoder's too),
        sampler steps and the mitigation's ``quick_params`` (e.g. CPSample's classifier
        steps). N_gen comes from the run (``n_gen`` by default)."""
        train = replace(
            case.train,
            steps=self.train_steps,
            batch_size=self.batch_size,
            warmup_steps=min(case.train.warmup_steps, 1),
            checkpoint_every=self.train_steps,  # one checkpoint: the path runs, cheaply
        )
        sampler: SamplerConfig = replace(
            case.sampler, num_steps=min(case.sampler.num_steps, self.sampler_steps)
        )
        model = case.model
        if model.autoencoder is not None:  # a latent family's autoencoder trains first
            model = replace(model, autoencoder=replace(
                model.autoencoder, steps=self.train_steps, batch_size=self.batch_size))  # fmt: skip
        mit_cls = registry.mitigations.get(case.mitigation.name)
        params = {**case.mitigation.kwargs, **getattr(mit_cls, "quick_params", {})}
        mitigation = MitigationConfig(case.mitigation.name, params)
        case = replace(case, model=model, train=replace(train, mitigation=None),
                       sampler=sampler, mitigation=mitigation)  # fmt: skip
        return with_mitigation_training(case)

    def detector(self, cfg: DetectorConfig) -> DetectorConfig:
        return replace(
            cfg,
            steps=self.detector_steps,
            batch_size=self.detector_batch,
            val_size=self.detector_val,
            min_accuracy=0.0,
        )
