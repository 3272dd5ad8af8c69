-- Users and organizations share one namespace, as in MSR's eNZi account
-- service: a repository namespace is either a user or an organization.
CREATE TABLE accounts (
    id            uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text        NOT NULL UNIQUE,
    full_name     text        NOT NULL DEFAULT '',
    is_org        boolean     NOT NULL DEFAULT false,
    is_admin      boolean     NOT NULL DEFAULT false,
    is_active     boolean     NOT NULL DEFAULT true,
    -- argon2id in PHC string form; NULL for organizations, which never log in.
    password_hash text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT orgs_do_not_log_in CHECK (NOT is_org OR (password_hash IS NULL AND NOT is_admin))
);

-- Each settings resource (`backup`, `smtp`, …) is one JSON document, written
-- whole by the code that validated it. A missing row means "defaults".
-- Together these rows are the "configurations" dataset of a backup.
CREATE TABLE settings (
    name       text        PRIMARY KEY,
    value      jsonb       NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
