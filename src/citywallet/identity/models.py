"""Identity tables."""
