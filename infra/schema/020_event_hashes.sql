-- The hash chain of each job's events (see ledger/chain.py), by global position.
-- Written in the same transaction as the events; `ledger verify` recomputes it.
CREATE TABLE IF NOT EXISTS event_hashes (
    position bigint PRIMARY KEY,  -- ledger_events.notification_id
    hash     bytea  NOT NULL
);
