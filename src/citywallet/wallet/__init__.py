"""Wallets: balances and limits, bank cards, top-up, withdrawal, P2P, AA split, history."""
