-- Status intervals, kept by projections.intervals: each job's status over time, so that
-- lists and statistics "as of" a past moment read rows rather than replay the log.
-- An interval is [valid_from, valid_to); the open one (valid_to NULL) is the job's
-- status now. A Deleted event opens a last 'deleted' interval, which reads leave out.
CREATE TABLE IF NOT EXISTS job_status_intervals (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    version     integer     NOT NULL,  -- the job's version when the interval began
    job_type    text        NOT NULL,
    status      text        NOT NULL,
    valid_from  timestamptz NOT NULL,
    valid_to    timestamptz,
    created_at  timestamptz NOT NULL,  -- the job's, for the list order and stats days
    start_time  timestamptz,           -- the job's first start, as it stood then
    duration_ms bigint,                -- set while the job is finished
    PRIMARY KEY (tenant, id, version)
);

-- Lists as of a moment walk the list order and keep the intervals live then.
CREATE INDEX IF NOT EXISTS job_status_intervals_tenant_created_at_id_idx
    ON job_status_intervals (tenant, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS job_status_intervals_created_at_id_tenant_idx
    ON job_status_intervals (created_at DESC, id DESC, tenant DESC);
-- Statistics as of a moment read the intervals begun by then.
CREATE INDEX IF NOT EXISTS job_status_intervals_tenant_valid_from_idx
    ON job_status_intervals (tenant, valid_from);
CREATE INDEX IF NOT EXISTS job_status_intervals_open_idx
    ON job_status_intervals (tenant, id) WHERE valid_to IS NULL;

CREATE TABLE IF NOT EXISTS job_status_intervals_tracking (
    application_name text PRIMARY KEY,
    notification_id  bigint
);
INSERT INTO job_status_intervals_tracking VALUES ('__migration__', 1) ON CONFLICT DO NOTHING;
