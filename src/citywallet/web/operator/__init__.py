"""Pages: see citywallet.web."""
