"""The double-entry ledger: accounts, immutable transfers, two-phase and linked posting, proofs."""
