"""Residents: sign-up, sessions, real name and tiers, payment PIN, devices."""
