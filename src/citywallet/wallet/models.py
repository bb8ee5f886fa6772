"""Wallet tables."""
