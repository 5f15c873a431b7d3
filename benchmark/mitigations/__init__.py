"""Mitigations: act inside a sampler through the guidance hook, or wrap sampling."""
