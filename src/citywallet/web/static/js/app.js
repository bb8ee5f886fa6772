// Resident app behaviour (own code, no libraries).
