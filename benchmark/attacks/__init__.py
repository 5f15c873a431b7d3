"""Membership-inference attacks (docs/science.md), one file each, registered as plugins."""
