-- Counters by tenant x job_type x status x creation day (UTC), kept by
-- projections.stats so that statistics never scan `jobs`.
CREATE TABLE IF NOT EXISTS job_stats (
    tenant         text    NOT NULL,
    job_type       text    NOT NULL,
    status         text    NOT NULL,
    day            date    NOT NULL,
    count          bigint  NOT NULL,
    duration_count bigint  NOT NULL,  -- finished jobs that have a duration
    duration_sum   bigint  NOT NULL,
    duration_min   bigint,
    duration_max   bigint,
    PRIMARY KEY (tenant, job_type, status, day)
);

CREATE INDEX IF NOT EXISTS job_stats_tenant_day_idx ON job_stats (tenant, day);
CREATE INDEX IF NOT EXISTS job_stats_day_idx ON job_stats (day);

-- The stats projection's own record of where each job counts. min and max can't
-- be decremented, so when a job leaves a bucket its min/max is recomputed from
-- here (the index makes that two index probes).
CREATE TABLE IF NOT EXISTS job_stats_jobs (
    tenant      text        NOT NULL,
    id          text        NOT NULL,
    job_type    text        NOT NULL,
    status      text        NOT NULL,
    day         date        NOT NULL,
    start_time  timestamptz,
    duration_ms bigint,
    version     integer     NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE INDEX IF NOT EXISTS job_stats_jobs_bucket_duration_idx
    ON job_stats_jobs (tenant, job_type, status, day, duration_ms);

CREATE TABLE IF NOT EXISTS job_stats_tracking (
    application_name text PRIMARY KEY,
    notification_id  bigint
);
INSERT INTO job_stats_tracking VALUES ('__migration__', 1) ON CONFLICT DO NOTHING;
