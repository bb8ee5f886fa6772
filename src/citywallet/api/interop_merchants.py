"""Our merchants as payees of other providers' residents, and as payers of refunds back to
them: the merchant feature behind the provider's FSPIOP handlers (``BusinessPayee``,
``BusinessPayer``) and the provider behind the merchant's refunds (``SwitchRefunds``),
wired here because interop and merchant are sibling features that do not import each other
(docs/layers.md)."""

from __future__ import annotations

from datetime import UTC, datetime

from citywallet.interop.messages import PartyRef, QuoteRequest, TransferPrepare
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


class MerchantRefunds:
    """A merchant's refund through the switch: :class:`~citywallet.merchant.interop_refunds.
    SwitchRefunds` by the provider's payer, :class:`~citywallet.interop.provider.business.
    BusinessPayer` by merchant.interop_refunds."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def send(
        self,
        uow: UnitOfWork,
        *,
        refund_id: str,
        merchant_id: str,
        payer_fsp: str,
        payer_identifier: str,
        amount: int,
    ) -> None:
        """The refund's quote to the payer's provider (the prepare follows its terms)."""
        interop.start_business_quote(
            uow, owner=refund_id, merchant_id=merchant_id,
            payee=PartyRef(party_identifier=payer_identifier, fsp_id=payer_fsp),
            amount=amount, settings=self.runtime.settings, now=datetime.now(UTC),
        )  # fmt: skip

    def hold(
        self, uow: UnitOfWork, *, owner: str, transfer_id: str, amount: int, settlement: int
    ) -> bool:
        """The merchant's pending debit toward the switch."""
        return merchants.hold_refund(
            uow, refund_id=owner, transfer_id=transfer_id, amount=amount, settlement=settlement
        )

    def commit(self, uow: UnitOfWork, *, owner: str) -> None:
        """The refund succeeded."""
        merchants.commit_refund(uow, refund_id=owner)

    def fail(self, uow: UnitOfWork, *, owner: str) -> None:
        """The refund failed; its amount is refundable again."""
        merchants.fail_refund(uow, refund_id=owner)


def switch_refunds(runtime: Runtime) -> MerchantRefunds | None:
    """Refunds through the switch when this deployment is connected to one."""
    return MerchantRefunds(runtime) if interop.configured(runtime.settings) else None
