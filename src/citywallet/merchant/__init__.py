"""Merchants: onboarding, EMVCo QR, payment codes, orders, refunds, webhooks, settlement,
statements."""
