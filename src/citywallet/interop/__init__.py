"""Interoperability with other wallet providers and cells through a switch (docs/interop.md).

Today only the pure core exists: conditions, message signing, message models, the transfer
state machine, net debit cap positions and deferred net settlement. None of these modules
touches a database or the web (import-linter keeps it so).
"""
