"""The running platform's periodic tasks and worker (composition root, above every layer)."""

from __future__ import annotations

from datetime import UTC, datetime

from citywallet.api.interop_merchants import MerchantRefunds
from citywallet.campaign import service as campaigns
from citywallet.campaign.notify import won_handler
from citywallet.control import service as control
from citywallet.identity.codes import SMS_TOPIC, sms_outbox_handler
from citywallet.interop import transport
from citywallet.interop.provider import service as interop
from citywallet.ledger.blocks import seal_block
from citywallet.ledger.log import WITNESS_TOPIC
from citywallet.ledger.service import expire_pending
from citywallet.ledger.witness import witness_handler
from citywallet.merchant.service import (
    WEBHOOK_TOPIC,
    close_expired_orders,
    post_guarded,
    purge_nonces,
    run_settlements,
    webhook_handler,
)
from citywallet.platform import idempotency, outbox, ratelimit
from citywallet.platform.db import Database
from citywallet.platform.jobs import Worker, default_worker_id
from citywallet.redpacket.expiry import expire_packets
from citywallet.runtime import Runtime
from citywallet.wallet.funding import reconcile_fundings
from citywallet.wallet.notify import reminder_handler
from citywallet.wallet.transfers import REMINDER_TOPIC


def register_default_tasks(worker: Worker, runtime: Runtime) -> None:
    """The platform's periodic tasks: expire holds, seal blocks, deliver the outbox,
    reconcile bank fundings, expire stale dual-control proposals, close expired orders,
    settle merchants, return what is unclaimed of expired red packets, reclaim expired
    campaign red packets, purge idempotency keys, request nonces, rate-limit counters and
    old interop lookups and unused quotes; with a switch configured, ask it about interop
    transfers left pending past their expiration."""
    max_transfers = runtime.settings.seal_max_transfers
    witnesses = runtime.settings.ledger_witnesses

    def expire(db: Database) -> int:
        return db.transact(lambda uow: expire_pending(uow))

    def seal(db: Database) -> int:
        signer = runtime.ledger_signer()
        return db.transact(
            lambda uow: seal_block(uow, signer, max_transfers=max_transfers, witnesses=witnesses)
        )

    def post_checkpoint(url: str, body: bytes) -> int:
        # Witness webhooks pass the same SSRF guard as merchants' webhooks.
        content_type = "text/plain; charset=utf-8"
        return post_guarded(url, body, content_type=content_type, settings=runtime.settings)

    def deliver(db: Database) -> int:
        handlers = {
            **outbox.registered_handlers(),
            SMS_TOPIC: sms_outbox_handler(runtime.sms, runtime.encryptor),
            REMINDER_TOPIC: reminder_handler(db, runtime.sms, runtime.encryptor),
            WEBHOOK_TOPIC: webhook_handler(db, runtime.encryptor, runtime.settings),
            campaigns.WON_TOPIC: won_handler(db, runtime.sms, runtime.encryptor),
            WITNESS_TOPIC: witness_handler(post_checkpoint),
        }
        if runtime.settings.interop_participant_id:  # the courier's retries, from any process
            handlers[transport.TOPIC] = sender()
        return outbox.deliver_due(db, handlers=handlers)

    senders: list[transport.Sender] = []

    def sender() -> transport.Sender:
        if not senders:
            senders.append(transport.Sender(runtime.interop_key))
        return senders[0]

    def sweep_interop(db: Database) -> int:
        return db.transact(
            lambda uow: interop.sweep(
                uow, settings=runtime.settings, now=datetime.now(UTC),
                refunds=MerchantRefunds(runtime),
            )
        )  # fmt: skip

    def purge(db: Database) -> int:
        return db.transact(lambda uow: idempotency.purge_expired(uow))

    def purge_interop(db: Database) -> int:
        return interop.purge_all(db)

    def expire_proposals(db: Database) -> int:
        return db.transact(lambda uow: control.expire_stale(uow))

    def purge_rate_limits(db: Database) -> int:
        return db.transact(lambda uow: ratelimit.purge_expired(uow))

    def reconcile(db: Database) -> int:
        report = reconcile_fundings(db, bank=runtime.bank, settings=runtime.settings)
        return report.resolved

    def close_orders(db: Database) -> int:
        return db.transact(lambda uow: close_expired_orders(uow))

    def settle(db: Database) -> int:
        report = run_settlements(
            db, bank=runtime.bank, settings=runtime.settings, encryptor=runtime.encryptor
        )
        return int(report.created + report.paid)

    def purge_used_nonces(db: Database) -> int:
        return db.transact(lambda uow: purge_nonces(uow))

    def expire_redpackets(db: Database) -> int:
        refunded = 0
        while (batch := db.transact(lambda uow: expire_packets(uow))) > 0:
            refunded += batch
        return refunded

    def reclaim_campaigns(db: Database) -> int:
        reclaimed = 0
        while (batch := db.transact(lambda uow: campaigns.reclaim_due(uow))) > 0:
            reclaimed += batch
        return reclaimed

    worker.register_periodic("ledger.expire_pending", 1.0, expire)
    worker.register_periodic("ledger.seal_block", runtime.settings.seal_interval_seconds, seal)
    worker.register_periodic("outbox.deliver", 1.0, deliver)
    worker.register_periodic("idempotency.purge", 3600.0, purge)
    worker.register_periodic("ratelimit.purge", 3600.0, purge_rate_limits)
    worker.register_periodic("control.expire_proposals", 60.0, expire_proposals)
    worker.register_periodic("interop.purge", 3600.0, purge_interop)
    worker.register_periodic("wallet.reconcile_fundings", 30.0, reconcile)
    worker.register_periodic("merchant.close_expired_orders", 5.0, close_orders)
    worker.register_periodic("merchant.settle", 300.0, settle)
    worker.register_periodic("merchant.purge_nonces", 600.0, purge_used_nonces)
    worker.register_periodic("redpacket.expire", 30.0, expire_redpackets)
    worker.register_periodic("campaign.reclaim", 60.0, reclaim_campaigns)
    if interop.configured(runtime.settings):
        worker.register_periodic("interop.sweep", 1.0, sweep_interop)


def build_worker(runtime: Runtime, *, worker_id: str | None = None) -> Worker:
    """A worker on ``runtime``'s database with the default periodic tasks registered."""
    worker = Worker(runtime.db, worker_id=worker_id or default_worker_id())
    register_default_tasks(worker, runtime)
    return worker
