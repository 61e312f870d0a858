-- The running set, kept by projections.running. It also holds the pending jobs
-- and the failed ones that may still be retried, because a later Started needs
-- their job_type and the projection reads no other model; reads select
-- status = 'running'.
CREATE TABLE IF NOT EXISTS running_jobs (
    tenant       text        NOT NULL,
    id           text        NOT NULL,
    job_type     text        NOT NULL,
    status       text        NOT NULL,
    progress     integer     NOT NULL,
    current_step text,
    start_time   timestamptz,
    updated_at   timestamptz NOT NULL,
    attempt      integer     NOT NULL,
    max_attempts integer     NOT NULL,
    version      integer     NOT NULL,
    body         bytea,  -- a running job as the set lists it (projections/views.py)
    body_version integer,  -- the version the body shows; served only while = version
    PRIMARY KEY (tenant, id)
);

-- Tables made before bodies were kept get the columns; a row without a body for its
-- version is written out by the query instead (projections/queries.py).
-- (Checked first: ALTER TABLE would lock the table even when the columns are there.)
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'running_jobs'::regclass
                   AND attname = 'body_version' AND NOT attisdropped) THEN
        ALTER TABLE running_jobs ADD COLUMN IF NOT EXISTS body bytea,
                                 ADD COLUMN body_version integer;
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS running_jobs_tenant_start_time_idx
    ON running_jobs (tenant, start_time DESC, id DESC) WHERE status = 'running';
CREATE INDEX IF NOT EXISTS running_jobs_start_time_idx
    ON running_jobs (start_time DESC, id DESC) WHERE status = 'running';

CREATE TABLE IF NOT EXISTS running_jobs_tracking (
    application_name text PRIMARY KEY,
    notification_id  bigint
);
INSERT INTO running_jobs_tracking VALUES ('__migration__', 1) ON CONFLICT DO NOTHING;
