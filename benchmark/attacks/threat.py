"""Threat models: what an attacker holds, and so which attacks a case is measured under.

- ``weights``: the released weights (white box): the raw eps_theta, its gradients.
- ``denoiser-api``: queries of the deployed denoiser, as the mitigation leaves it (a
  sampling-time mitigation's guided eps-hat).
- ``samples-only``: only the generated images the case released.

An attack declares the least it needs (``MembershipAttack.needs``). Every case is
attacked under ``weights`` (every attack that queries a network, on the raw eps_theta),
under ``denoiser-api`` (the query attacks through the mitigation's guidance) and under
``samples-only`` (the attacks that read the samples), so a sampling-time mitigation's
row shows both what it changes and what it leaves open. A mitigation declares which
threat models it claims to address (``Mitigation.addresses``); the leaderboard shows
one column group per threat model.
"""

from __future__ import annotations

from benchmark.errors import ConfigError

WEIGHTS = "weights"
DENOISER_API = "denoiser-api"
SAMPLES_ONLY = "samples-only"
THREAT_MODELS = (WEIGHTS, DENOISER_API, SAMPLES_ONLY)
# short tags for record keys: mia_<attack>_<tag>_auc
THREAT_TAGS = {WEIGHTS: "weights", DENOISER_API: "api", SAMPLES_ONLY: "samples"}
THREAT_LABELS = {
    WEIGHTS: "white box (released weights, raw eps_theta)",
    DENOISER_API: "denoiser API (queries of the deployed, possibly guided, denoiser)",
    SAMPLES_ONLY: "samples only (the generated images)",
}


def check_threat_model(name: str, what: str) -> str:
    if name not in THREAT_MODELS:
        raise ConfigError(
            f"{what}: unknown threat model {name!r}; use one of {list(THREAT_MODELS)}"
        )
    return name


def run_name(attack: str, threat: str) -> str:
    """The record name of ``attack`` run under ``threat`` (``loss`` under weights:
    ``loss_weights``, so its AUC is ``mia_loss_weights_auc``)."""
    return f"{attack}_{THREAT_TAGS[check_threat_model(threat, f'attack {attack!r}')]}"


def threat_models_for(needs: str) -> tuple[str, ...]:
    """The threat models an attack that needs ``needs`` is run under."""
    check_threat_model(needs, "an attack's needs")
    if needs == SAMPLES_ONLY:
        return (SAMPLES_ONLY,)
    if needs == WEIGHTS:
        return (WEIGHTS,)
    return (WEIGHTS, DENOISER_API)
