"""How identity data is protected: the process's Encryptor and the keyed lookup hashes.

The services' public contract takes a unit of work only (``find_user_by_phone(uow, phone=…)``),
so the :class:`~citywallet.platform.crypto.Encryptor` they need comes from here: the
composition root (:class:`citywallet.runtime.Runtime`) installs its encryptor when it is
built. Every service also accepts an explicit ``encryptor=`` which wins.
"""

from __future__ import annotations

from citywallet.platform.crypto import Encryptor

_installed: Encryptor | None = None


def install_encryptor(encryptor: Encryptor) -> None:
    """Make ``encryptor`` the process default for identity services (the runtime does this)."""
    global _installed  # one key ring per process, set by the composition root
    _installed = encryptor


def encryptor_or_default(encryptor: Encryptor | None = None) -> Encryptor:
    """``encryptor`` if given, else the installed one."""
    if encryptor is not None:
        return encryptor
    if _installed is None:
        raise RuntimeError(
            "no Encryptor installed: build a citywallet.runtime.Runtime first, or pass encryptor="
        )
    return _installed


def phone_hash(encryptor: Encryptor, e164: str) -> str:
    """The lookup hash of a normalised phone number (finds users and sandbox messages)."""
    return encryptor.lookup_hash(f"phone:{e164}")


def id_number_hash(encryptor: Encryptor, number: str) -> str:
    """The lookup hash of a resident ID number (keeps one verified identity per person)."""
    return encryptor.lookup_hash(f"resident_id:{number}")
