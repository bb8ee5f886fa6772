-- One transfer per transaction in raw SQL: two balance updates and one insert.
-- The equivalent of `ledger.post([one transfer])` without the engine: the two accounts
-- are updated in ascending id order (no deadlocks), the no-overdraft CHECK constraint on
-- ledger_accounts still applies, and the row has the same shape (id, hash, timestamp).
-- Variables (pgbench -D): lo, hi = customer account ids; hot = merchant id or 0 (uniform).
\set a random(:lo, :hi)
\set b random(:lo, :hi - 1)
\set b CASE WHEN :hot > 0 THEN :hot WHEN :b >= :a THEN :b + 1 ELSE :b END
\set amt random(1, 1000)
\set first least(:a, :b)
\set second greatest(:a, :b)
BEGIN;
UPDATE ledger_accounts
   SET debits_posted = debits_posted + CASE WHEN id = :a THEN :amt ELSE 0 END,
       credits_posted = credits_posted + CASE WHEN id = :b THEN :amt ELSE 0 END
 WHERE id = :first;
UPDATE ledger_accounts
   SET debits_posted = debits_posted + CASE WHEN id = :a THEN :amt ELSE 0 END,
       credits_posted = credits_posted + CASE WHEN id = :b THEN :amt ELSE 0 END
 WHERE id = :second;
INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, ledger, code,
                              flags, pending_id, timeout, reference, timestamp, hash)
SELECT u::text, :a, :b, :amt, 'CNY', 99, 0, NULL, 0, NULL,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, sha256(uuid_send(u))
  FROM (SELECT gen_random_uuid() AS u) AS s;
END;
