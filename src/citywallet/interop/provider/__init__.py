"""A CityWallet deployment as a participant of the switch (docs/interop.md, "The provider")."""
