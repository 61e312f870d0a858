-- The `jobs` read model: one row per job, as a replay of its events makes it.
-- Written only by projections.jobs, each batch with its tracking position.
CREATE TABLE IF NOT EXISTS jobs (
    tenant            text        NOT NULL,
    id                text        NOT NULL,
    job_type          text        NOT NULL,
    name              text,
    status            text        NOT NULL,
    progress          integer     NOT NULL,
    current_step      text,
    records_processed bigint      NOT NULL,
    total_records     bigint,
    records_created   bigint      NOT NULL,
    records_updated   bigint      NOT NULL,
    records_deleted   bigint      NOT NULL,
    start_time        timestamptz,
    end_time          timestamptz,
    duration_ms       bigint,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    error_message     text,
    error_details     jsonb,
    error_history     jsonb       NOT NULL,
    parameters        jsonb       NOT NULL,
    labels            jsonb       NOT NULL,
    counters          jsonb       NOT NULL,
    result            jsonb,
    cancel_reason     text,
    attempt           integer     NOT NULL,
    max_attempts      integer     NOT NULL,
    created_by        text        NOT NULL,
    version           integer     NOT NULL,
    position          bigint      NOT NULL,  -- global position of the job's last event
    body              bytea,  -- the job's JSON as the API answers it (projections/views.py)
    body_version      integer,  -- the version the body shows; served only while = version
    PRIMARY KEY (tenant, id)
);

-- Tables made before bodies were kept get the columns; their rows' bodies come with each
-- job's next change or a rebuild, and a page renders a missing one from the columns. A
-- writer that moves a row on without a new body (a projection of an older release, during
-- an upgrade) leaves body_version behind, so that body is not served either.
-- (Checked first: ALTER TABLE would lock the table even when the columns are there.)
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'jobs'::regclass
                   AND attname = 'body_version' AND NOT attisdropped) THEN
        ALTER TABLE jobs ADD COLUMN IF NOT EXISTS body bytea,
                         ADD COLUMN body_version integer;
    END IF;
END $$;

-- Lists are newest first by (created_at, id); tenant breaks ties across tenants.
CREATE INDEX IF NOT EXISTS jobs_tenant_created_at_id_idx
    ON jobs (tenant, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_created_at_id_tenant_idx
    ON jobs (created_at DESC, id DESC, tenant DESC);
CREATE INDEX IF NOT EXISTS jobs_tenant_status_created_at_id_idx
    ON jobs (tenant, status, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS jobs_tenant_job_type_created_at_id_idx
    ON jobs (tenant, job_type, created_at DESC, id DESC);
-- start_date / end_date select by start_time; unstarted jobs never match them.
CREATE INDEX IF NOT EXISTS jobs_tenant_start_time_idx
    ON jobs (tenant, start_time) WHERE start_time IS NOT NULL;
-- Lists by start date walk the creation order only near the dates (projections/listing.py);
-- the jobs that match from farther away are here, few by nature: jobs that waited over an
-- hour to start, and jobs stamped as started before they were created (clocks disagree).
CREATE INDEX IF NOT EXISTS jobs_tenant_created_at_id_started_late_idx
    ON jobs (tenant, created_at DESC, id DESC) WHERE start_time - created_at > interval '1 hour';
CREATE INDEX IF NOT EXISTS jobs_tenant_created_at_id_started_early_idx
    ON jobs (tenant, created_at DESC, id DESC) WHERE start_time < created_at;

-- Jobs removed by Deleted: reads of them answer 410 Gone rather than 404.
CREATE TABLE IF NOT EXISTS deleted_jobs (
    tenant     text        NOT NULL,
    id         text        NOT NULL,
    version    integer     NOT NULL,
    position   bigint      NOT NULL,
    deleted_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, id)
);

-- Same shape as the library's single-row tracking table; the `__migration__` row
-- tells PostgresTrackingRecorder the table needs no migration.
CREATE TABLE IF NOT EXISTS jobs_tracking (
    application_name text PRIMARY KEY,
    notification_id  bigint
);
INSERT INTO jobs_tracking VALUES ('__migration__', 1) ON CONFLICT DO NOTHING;
