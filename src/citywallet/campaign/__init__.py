"""Government red-packet campaigns: registration, a lottery anyone can check, restricted use."""
