-- Bearer tokens. Only a SHA-256 hash of each token's secret is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
    id          text        PRIMARY KEY,          -- recorded as the actor on events
    tenant      text,                             -- NULL: a global token (admin only)
    role        text        NOT NULL CHECK (role IN ('admin', 'writer', 'reader', 'auditor')),
    secret_hash bytea       NOT NULL,
    label       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    CHECK (tenant IS NOT NULL OR role = 'admin')
);
