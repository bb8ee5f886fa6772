"""The interoperability switch: participants, aliases, quotes, transfers, positions, windows.

Its own process and database (``citywallet switch serve``); the protocol core it applies
(``interop.transfers``, ``interop.positions``, ``interop.settlement``) stays pure.
"""
