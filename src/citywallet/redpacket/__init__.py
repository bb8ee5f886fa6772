"""Social red packets: fixed and lucky, groups, claims, expiry refunds."""
