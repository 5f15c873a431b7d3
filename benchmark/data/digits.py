"""The embedded default dataset: scikit-learn's handwritten digits (docs/science.md, the data).

1797 real 8x8 images shipped inside scikit-learn, so the smoke tier runs
offline. Upsampled to 16x16 (bilinear), one channel, labels 0-9.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from benchmark.data.base import DatasetSource, Pools


class DigitsDataset(DatasetSource):
    name = "digits"
    image_size = 16
    channels = 1
    num_classes = 10

    def load_pools(self) -> Pools:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.from_numpy(digits.images).float().unsqueeze(1) / 16.0  # (N,1,8,8) in [0,1]
        images = F.interpolate(images, size=self.image_size, mode="bilinear", align_corners=False)
        return Pools(images.clamp(0, 1), torch.from_numpy(digits.target).long())
