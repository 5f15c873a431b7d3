"""Membership-inference attacks (SPEC section 7), one file each, registered as plugins."""
