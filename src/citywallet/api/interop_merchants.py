"""Our merchants as payees of other providers' residents: the merchant feature behind the
provider's FSPIOP handlers (``BusinessPayee``), wired here because interop and merchant are
sibling features that do not import each other (docs/layers.md)."""

from __future__ import annotations

from citywallet.interop.messages import QuoteRequest, TransferPrepare
from citywallet.interop.provider import service as interop
from citywallet.merchant import service as merchants
from citywallet.platform.db import UnitOfWork
from citywallet.runtime import Runtime

SECOND_US = 1_000_000


class MerchantPayee:
    """:class:`~citywallet.interop.provider.business.BusinessPayee` by merchant.interop."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def quote(
        self, uow: UnitOfWork, *, request: QuoteRequest, expires_at: int
    ) -> interop.BusinessTerms:
        """The merchant's terms for the scanned payload (authenticated with our key)."""
        assert request.qr_payload is not None  # QuoteRequest: a BUSINESS payee carries it
        quoted = merchants.quote_payment(
            uow,
            quote_id=request.quote_id,
            merchant_id=request.payee.party_identifier,
            payload=request.qr_payload,
            amount=request.amount.amount,
            payer_fsp=request.payer.fsp_id,
            payer_id_type=request.payer.party_id_type,
            payer_identifier=request.payer.party_identifier,
            expires_at=expires_at,
            participant_id=self.runtime.settings.interop_participant_id,
            encryptor=self.runtime.encryptor,
        )
        return interop.BusinessTerms(amount=quoted.amount, fee=quoted.fee)

    def prepare(
        self, uow: UnitOfWork, *, quote_id: str, prepare: TransferPrepare, settlement: int
    ) -> None:
        """Hold the order, credit the merchant pending."""
        merchants.prepare_payment(
            uow,
            quote_id=quote_id,
            transfer_id=prepare.transfer_id,
            amount=prepare.amount.amount,
            settlement_account_id=settlement,
            expires_at=int(prepare.expiration.timestamp() * SECOND_US),
        )

    def commit(self, uow: UnitOfWork, *, transfer_id: str) -> None:
        """Post the credit; the order is paid; the merchant's webhook."""
        merchants.commit_payment(uow, transfer_id=transfer_id)

    def abort(self, uow: UnitOfWork, *, transfer_id: str) -> None:
        """Void the credit; the order is open again (a static code's closes)."""
        merchants.abort_payment(uow, transfer_id=transfer_id)
