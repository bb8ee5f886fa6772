-- One successful P2P transfer (by the payee's user id, both wallets open, no restricted
-- money): the statements the server sends for it on PostgreSQL, as tests/statement_count.py
-- saw them in tests/api/test_payment_budget.py, with their values read from row :n of
-- bench_replay_p2p (bench/replay.py fills it; each row a new transfer id and key).
-- The server sends the two history lines as one executemany (two executions in one
-- round trip); here they are two INSERTs. As in scan_payment.sql, the ledger's account
-- update adds the amounts to the counters the lock read instead of sending new values.
-- Variables (pgbench -D): k = 0, clients = --client; row n = k * clients + client_id.
\set n :k * :clients + :client_id
\set k :k + 1
SELECT * FROM bench_replay_p2p WHERE n = :n \gset
BEGIN;
INSERT INTO platform_idempotency_keys (scope, key, request_hash, status_code, response_body, created_at) VALUES (:payer, :idem_key, :request_hash, 0, '', :ts) ON CONFLICT (scope, key) DO NOTHING RETURNING scope;
SELECT identity_users.id AS user_pk, identity_users.public_id AS user_id, identity_users.phone_hash AS phone_hash, identity_users.phone_masked, identity_users.status, identity_users.tier, identity_real_names.name_masked, identity_payment_pins.pin_hash, identity_payment_pins.key_id, identity_payment_pins.failed_attempts, identity_payment_pins.locked_until, wallet_wallets.ledger_account_id, wallet_wallets.closed_at, EXISTS (SELECT * FROM wallet_restricted_balances WHERE wallet_restricted_balances.user_id = wallet_wallets.user_id AND wallet_restricted_balances.status = 'active'::VARCHAR) AS has_restricted FROM identity_users LEFT OUTER JOIN identity_real_names ON identity_real_names.user_id = identity_users.id LEFT OUTER JOIN identity_payment_pins ON identity_payment_pins.user_id = identity_users.id JOIN wallet_wallets ON wallet_wallets.user_id = identity_users.public_id WHERE identity_users.public_id = :payer::VARCHAR OR identity_users.public_id = :payee::VARCHAR ORDER BY wallet_wallets.ledger_account_id FOR UPDATE OF wallet_wallets;
INSERT INTO wallet_limit_usage (user_id, period, amount, updated_at) SELECT :payer, key, value::bigint, :ts FROM jsonb_each_text(CAST(:limit_changes AS jsonb)) ORDER BY key ON CONFLICT (user_id, period) DO UPDATE SET amount = wallet_limit_usage.amount + excluded.amount, updated_at = excluded.updated_at RETURNING period, amount;
SELECT id, ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted FROM ledger_accounts WHERE id = ANY(:accounts::bigint[]) ORDER BY id FOR UPDATE;
WITH new_transfers AS (INSERT INTO ledger_transfers (id, debit_account_id, credit_account_id, amount, ledger, code, flags, pending_id, timeout, reference, timestamp, hash) VALUES (:transfer_id, :payer_account, :payee_account, :amount, 'CNY', 4, 0, NULL, 0, :transfer_id, :ts, :hash)) UPDATE ledger_accounts AS a SET debits_pending = a.debits_pending + v.dp, debits_posted = a.debits_posted + v.dpo, credits_pending = a.credits_pending + v.cp, credits_posted = a.credits_posted + v.cpo FROM unnest(:d_dp::bigint[], :d_dpo::bigint[], :d_cp::bigint[], :d_cpo::bigint[], :accounts::bigint[]) AS v(dp, dpo, cp, cpo, id) WHERE a.id = v.id;
INSERT INTO wallet_activity (user_id, object_id, kind, amount, fee, currency, status, counterparty_user_id, counterparty_label, note, reference, transfer_ids, created_at, updated_at) VALUES (:payer, :transfer_id, 'transfer_out', :amount, 0, 'CNY', 'succeeded', :payee, :payee_label, '', NULL, :activity_transfer_ids, :ts, :ts);
INSERT INTO wallet_activity (user_id, object_id, kind, amount, fee, currency, status, counterparty_user_id, counterparty_label, note, reference, transfer_ids, created_at, updated_at) VALUES (:payee, :transfer_id, 'transfer_in', :amount, 0, 'CNY', 'succeeded', :payer, :payer_label, '', NULL, :activity_transfer_ids, :ts, :ts);
UPDATE platform_idempotency_keys SET status_code = 201, response_body = :response WHERE scope = :payer AND key = :idem_key AND status_code = 0;
COMMIT;
