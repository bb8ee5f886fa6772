-- A batch of :batch transfers per transaction in raw SQL (needs bench/pgbench/setup.sql).
-- 1. lock every account the batch touches, in ascending id order (as the engine does; without
--    it concurrent batches deadlock), 2. INSERT ... SELECT the transfers, 3. one UPDATE ...
--    FROM the per-account deltas. The no-overdraft CHECK constraint still applies.
-- Variables (pgbench -D): lo, hi = customer account ids; hot = merchant id or 0; batch.
\set seed random(1, 1000000000)
BEGIN;
SELECT count(*) FROM (
    SELECT id FROM ledger_accounts
     WHERE id IN (SELECT d FROM bench_pairs(:seed, :batch, :lo, :hi, :hot)
                  UNION SELECT c FROM bench_pairs(:seed, :batch, :lo, :hi, :hot))
     ORDER BY id FOR UPDATE
) AS locked;
INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, ledger, code,
                              flags, pending_id, timeout, reference, timestamp, hash)
SELECT s.u::text, s.d, s.c, s.amt, 'CNY', 99, 0, NULL, 0, NULL,
       (extract(epoch FROM clock_timestamp()) * 1000000)::bigint, sha256(uuid_send(s.u))
  FROM (SELECT gen_random_uuid() AS u, p.* FROM bench_pairs(:seed, :batch, :lo, :hi, :hot) AS p) AS s;
UPDATE ledger_accounts AS a
   SET debits_posted = a.debits_posted + v.dp,
       credits_posted = a.credits_posted + v.cp
  FROM (SELECT id, sum(dp) AS dp, sum(cp) AS cp
          FROM (SELECT d AS id, amt AS dp, 0 AS cp FROM bench_pairs(:seed, :batch, :lo, :hi, :hot)
                UNION ALL
                SELECT c, 0, amt FROM bench_pairs(:seed, :batch, :lo, :hi, :hot)) AS x
         GROUP BY id) AS v
 WHERE a.id = v.id;
END;
