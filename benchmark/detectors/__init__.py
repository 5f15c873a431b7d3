"""Detectors of the fingerprint audit (docs/science.md, the fingerprint): C_SAF and C_ID."""
