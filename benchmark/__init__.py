"""memobench: does this diffusion model give away its training images?

The library behind the pytest benchmark: data (with the synthetic anatomic
fingerprint of Dombrowski & Kainz, 2023), model families, samplers,
mitigations, detectors, metrics, attacks and the leaderboard report.
"""

__version__ = "0.1.0"
