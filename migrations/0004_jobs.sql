-- MSR's job runner, and the catalog of backups the jobs wrote.

-- One row per `msr serve` replica. A replica renews its heartbeat while it
-- runs; one whose heartbeat expired is dead, and the others fail its jobs.
CREATE TABLE workers (
    id text PRIMARY KEY CHECK (id ~ '^[0-9a-f]{12}$'),
    hostname text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_expiration timestamptz NOT NULL,
    capacity_map jsonb NOT NULL DEFAULT '{}'
);

CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    retry_from_id uuid NOT NULL,
    -- NULL while unclaimed (MSR's "").
    worker_id text,
    status text NOT NULL CHECK (status IN ('waiting', 'running', 'done', 'errored', 'canceled')),
    scheduled_at timestamptz NOT NULL,
    last_updated timestamptz NOT NULL DEFAULT now(),
    action text NOT NULL,
    retries_left integer NOT NULL DEFAULT 0 CHECK (retries_left >= 0),
    retries_total integer NOT NULL DEFAULT 0 CHECK (retries_total >= 0),
    capacity_map jsonb,
    parameters jsonb,
    -- Go duration strings, '' when unset, as MSR reports them.
    deadline text NOT NULL DEFAULT '',
    stop_timeout text NOT NULL DEFAULT '',
    -- The schedule time a scheduled job was enqueued for; NULL for jobs
    -- started through the API. However many replicas see the same tick,
    -- this constraint lets exactly one of them enqueue it.
    occurrence timestamptz,
    cancel_requested boolean NOT NULL DEFAULT false,
    started_at timestamptz,
    ended_at timestamptz,
    UNIQUE (action, occurrence)
);

-- At most one job of an action runs at a time, whichever replica claims
-- it: two backups in parallel would only compete for the same resources.
CREATE UNIQUE INDEX jobs_one_running_per_action ON jobs (action) WHERE status = 'running';
CREATE INDEX jobs_waiting ON jobs (scheduled_at) WHERE status = 'waiting';
CREATE INDEX jobs_newest ON jobs (scheduled_at DESC, id);
CREATE INDEX jobs_by_worker ON jobs (worker_id) WHERE status = 'running';

CREATE TABLE job_logs (
    job_id uuid NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    line_num integer NOT NULL,
    data text NOT NULL,
    logged_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, line_num)
);

-- Backups written to the backup storage. A row is 'writing' from before the
-- first byte is uploaded until the archive is complete in storage, so that
-- whoever finds the writer gone (cancel, deadline, a dead replica) knows
-- which upload to discard; and 'deleting' from before its objects are
-- removed until they are gone, so that a deletion cut short is finished
-- later rather than leaving a listed backup without its archive. Only
-- 'complete' rows are ever listed.
CREATE TABLE backups (
    id uuid PRIMARY KEY,
    job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
    status text NOT NULL CHECK (status IN ('writing', 'complete', 'deleting')),
    kind text NOT NULL CHECK (kind IN ('metadata', 'full')),
    ignore_scan_data boolean NOT NULL,
    -- The object's key in the backup storage, and the storage's location.
    key text NOT NULL UNIQUE,
    location text NOT NULL,
    -- The storage's handle on an upload in progress (an S3 multipart upload
    -- id, or a local staging file's suffix).
    upload_id text,
    size bigint CHECK (size >= 0),
    sha256 text CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    created_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    -- The catalog entry as the API lists it and as `<key>.json` beside the
    -- archive holds it: type, dataset counts, blobs, and so on.
    entry jsonb,
    CHECK (status <> 'complete' OR (size IS NOT NULL AND sha256 IS NOT NULL AND entry IS NOT NULL))
);

CREATE INDEX backups_newest ON backups (created_at DESC) WHERE status = 'complete';
