"""The computations metrics, attacks and mitigations share: t*, |q| and its statistics,
Carlini's criterion, feature replication, FID, membership scores, bootstrap intervals,
feature extractors and the DP bound (docs/architecture.md, layer 4)."""
