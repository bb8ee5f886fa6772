"""CityWallet: an open-source digital wallet platform on a tamper-evident double-entry ledger."""

__version__ = "0.1.0"
