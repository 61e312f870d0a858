-- Credentials of the vendor dialects: Tencent SecretId/SecretKey, Huawei AK/SK and
-- Oracle username/password. HMAC signatures can only be checked with the secret itself,
-- so those secrets are kept encrypted with the server's key (Fernet); Oracle's Basic
-- passwords are only ever compared, so only their scrypt hash is kept.
CREATE TABLE IF NOT EXISTS dialect_credentials (
    id               text        PRIMARY KEY,  -- SecretId, AK or username; the events' actor
    dialect          text        NOT NULL CHECK (dialect IN ('tencent', 'huawei', 'oracle')),
    tenant           text        NOT NULL,
    secret_encrypted bytea,
    password_hash    text,
    label            text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    revoked_at       timestamptz,
    CHECK ((dialect = 'oracle') = (password_hash IS NOT NULL)),
    CHECK ((dialect = 'oracle') = (secret_encrypted IS NULL))
);
