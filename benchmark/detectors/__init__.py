"""Detectors of the fingerprint audit (SPEC section 2): C_SAF and C_ID."""
