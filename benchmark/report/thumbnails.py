"""Small PNG pictures of a case's images, made when the case runs and kept in its record.

The results file, not the cache, is what a report is rendered from (shards from
other machines have no cache here), so the suite stores a few image grids as
``data:image/png;base64`` URIs: a grid of samples, the flagged reproductions
beside SAF(x_p), and the most similar sample/training pairs. For 16x16 digits
the three come to about 20 KB per case.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.utils import make_grid

from benchmark.measures.feature_replication import TOP_PAIRS
from benchmark.measures.reproduction import Q_FLAGGED
from benchmark.record import PICTURES, SUITE, TIER, TUNING_ROLE, check_entries

SCALE = 3  # pixels per image pixel (nearest neighbour), so 16x16 digits stay legible
THUMB = 64  # larger images are shrunk to this side (area averaging) in the pictures


def grid_uri(images: torch.Tensor, nrow: int = 16, pad: int = 1) -> str | None:
    """(N, C, H, W) images in [-1, 1] as one PNG grid, ``nrow`` per row."""
    if images.shape[0] == 0:
        return None
    if images.shape[-1] > THUMB:  # a 256x256 model's grid would be megabytes per page
        images = F.interpolate(images.float(), size=(THUMB, THUMB), mode="area")
    scale = max(1, min(SCALE, 64 // images.shape[-1]))
    grid = make_grid(((images.clamp(-1, 1) + 1) / 2).cpu(), nrow=nrow, padding=pad, pad_value=1)
    array = (grid.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    if array.shape[2] == 1:
        array = array[:, :, 0]
    img = Image.fromarray(array)
    img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def case_pictures(
    images: torch.Tensor,
    train: torch.Tensor,
    metrics: dict[str, Any],
    fingerprinted: torch.Tensor | None = None,
    n_samples: int = 64,
    n_flagged: int = 16,
    n_pairs: int = 8,
) -> dict[str, str | None]:
    """The pictures of one case's page from its samples, training images and metrics.

    Returns ``samples`` (the first ``n_samples``), ``reproductions`` (SAF(x_p) first,
    then up to ``n_flagged`` samples both detectors flagged; None if none were) and
    ``top_pairs`` (column pairs: sample above its nearest training image).
    """
    pictures: dict[str, str | None] = {"samples": grid_uri(images[:n_samples], nrow=16)}
    flagged = [i for i in metrics.get(Q_FLAGGED) or [] if 0 <= i < images.shape[0]]
    if fingerprinted is not None and flagged:
        rows = torch.cat([fingerprinted.unsqueeze(0), images[flagged[:n_flagged]]])
        pictures["reproductions"] = grid_uri(rows, nrow=rows.shape[0])
    else:
        pictures["reproductions"] = None
    pairs = [
        (s, t)
        for s, t, _ in (metrics.get(TOP_PAIRS) or [])[:n_pairs]
        if 0 <= s < images.shape[0] and 0 <= t < train.shape[0]
    ]
    if pairs:
        top = torch.stack([images[s] for s, _ in pairs])
        bottom = torch.stack([train[t] for _, t in pairs])
        pictures["top_pairs"] = grid_uri(torch.cat([top, bottom]), nrow=len(pairs))
    else:
        pictures["top_pairs"] = None
    return pictures


def case_record(result, tier: str, tuning_role: str | None = None) -> dict[str, Any]:
    """What a suite records of an audited case (``benchmark.audit.AuditResult``): its
    metrics, its tier, the case page's pictures made from its samples, and where a
    suite checks tuned settings, whether its model is the one they were tuned on."""
    data = result.data
    fingerprinted = data.saf.fingerprinted() if data.saf is not None else None
    record = dict(result.metrics)
    added = {
        TIER: tier,
        PICTURES: case_pictures(result.samples.images, data.train, record, fingerprinted),
    }
    if tuning_role is not None:
        added[TUNING_ROLE] = tuning_role
    check_entries("the suite", added, SUITE)
    record.update(added)
    return record
