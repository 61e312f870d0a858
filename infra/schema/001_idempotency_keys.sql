-- The first answer to each write made with an Idempotency-Key, per tenant.
-- Written in the same transaction as the events the write appended.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    tenant      text        NOT NULL,
    key         text        NOT NULL,
    fingerprint bytea       NOT NULL,  -- SHA-256 of method, path and body
    status      integer     NOT NULL,
    body        bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, key)
);

CREATE INDEX IF NOT EXISTS idempotency_keys_created_at_idx ON idempotency_keys (created_at);
