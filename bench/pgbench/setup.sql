-- Helper for the raw batched pgbench script (bench/pgbench/transfer_batch.sql).
--
-- bench_pairs(seed, n, lo, hi, hot) returns n pseudo-random transfers (debit, credit, amount)
-- as a pure function of its arguments, so that the statements of one pgbench transaction
-- (lock, insert, update) all see the same batch without a temporary table.
-- Debits come from the customer accounts lo..hi; credits from lo..hi (never the debit
-- account) or, when hot > 0, always from the one account `hot`. Amounts are 1..1000.
CREATE OR REPLACE FUNCTION bench_pairs(seed bigint, n int, lo bigint, hi bigint, hot bigint)
RETURNS TABLE (d bigint, c bigint, amt bigint)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT x.d,
           CASE WHEN hot > 0 THEN hot
                ELSE lo + mod(x.d - lo + 1 + mod(x.h2, hi - lo), hi - lo + 1) END,
           1 + mod(x.h3, 1000)
    FROM (
        SELECT lo + mod(hashint8(seed * 3 * n + 3 * g)::bigint & 2147483647, hi - lo + 1) AS d,
               hashint8(seed * 3 * n + 3 * g + 1)::bigint & 2147483647 AS h2,
               hashint8(seed * 3 * n + 3 * g + 2)::bigint & 2147483647 AS h3
        FROM generate_series(1, n) AS g
    ) AS x
$$;
