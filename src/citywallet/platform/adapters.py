"""Production adapters named in the settings as ``package.module:factory``.

CityWallet ships sandbox adapters only (SMS gateway, identity verifier, bank). A deployment
plugs in its own by naming a factory that takes the :class:`Settings` and returns the adapter
(``CITYWALLET_SMS_ADAPTER``, ``CITYWALLET_IDENTITY_ADAPTER``, ``CITYWALLET_BANK_ADAPTER``).
"""

from __future__ import annotations

import importlib

from citywallet.platform.config import Settings
from citywallet.platform.errors import AdapterUnavailable


def load_adapter(spec: str, settings: Settings, *, what: str) -> object:
    """Import ``package.module:factory`` and call it with ``settings``; a spec that cannot be
    imported or called raises ``AdapterUnavailable`` naming ``what``."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise AdapterUnavailable(f"{what}: {spec!r} is not 'package.module:factory'.")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
        return factory(settings)
    except Exception as exc:  # any failure to build it: the service is not available
        raise AdapterUnavailable(
            f"{what}: {spec} could not be loaded ({exc.__class__.__name__}: {exc})."
        ) from exc
