"""The running platform's periodic tasks and worker (composition root, above every layer)."""

from __future__ import annotations

from citywallet.identity.codes import SMS_TOPIC, sms_outbox_handler
from citywallet.ledger.blocks import seal_block
from citywallet.ledger.service import expire_pending
from citywallet.platform import idempotency, outbox
from citywallet.platform.db import Database
from citywallet.platform.jobs import Worker, default_worker_id
from citywallet.runtime import Runtime


def register_default_tasks(worker: Worker, runtime: Runtime) -> None:
    """The platform's periodic tasks: expire holds, seal blocks, deliver outbox, purge keys."""
    max_transfers = runtime.settings.seal_max_transfers

    def expire(db: Database) -> int:
        return db.transact(lambda uow: expire_pending(uow))

    def seal(db: Database) -> int:
        signer = runtime.ledger_signer()
        return db.transact(lambda uow: seal_block(uow, signer, max_transfers=max_transfers))

    def deliver(db: Database) -> int:
        handlers = {
            **outbox.registered_handlers(),
            SMS_TOPIC: sms_outbox_handler(runtime.sms, runtime.encryptor),
        }
        return outbox.deliver_due(db, handlers=handlers)

    def purge(db: Database) -> int:
        return db.transact(lambda uow: idempotency.purge_expired(uow))

    worker.register_periodic("ledger.expire_pending", 1.0, expire)
    worker.register_periodic("ledger.seal_block", 2.0, seal)
    worker.register_periodic("outbox.deliver", 1.0, deliver)
    worker.register_periodic("idempotency.purge", 3600.0, purge)


def build_worker(runtime: Runtime, *, worker_id: str | None = None) -> Worker:
    """A worker on ``runtime``'s database with the default periodic tasks registered."""
    worker = Worker(runtime.db, worker_id=worker_id or default_worker_id())
    register_default_tasks(worker, runtime)
    return worker
