"""Samplers: one pure function per algorithm, the denoising loop written out (edm style)."""
