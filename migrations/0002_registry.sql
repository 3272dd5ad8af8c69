-- The registry's own data: what MSR backs up (accounts, repositories, access
-- control, image metadata, Notary trust data, scan results) and the one thing
-- it never does (the vulnerability database).

-- Organization membership. An org admin (owner) manages its teams and
-- repositories; every team member is an org member.
CREATE TABLE org_members (
    org_id     uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    is_admin   boolean     NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);

CREATE TABLE teams (
    id          uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name        text        NOT NULL,
    description text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, name)
);

CREATE TABLE team_members (
    team_id    uuid        NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    user_id    uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (team_id, user_id)
);
CREATE INDEX team_members_by_user ON team_members (user_id);

-- A repository lives in a namespace: a user's or an organization's account.
CREATE TABLE repositories (
    id                uuid        PRIMARY KEY DEFAULT gen_random_uuid(),
    namespace_id      uuid        NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name              text        NOT NULL,
    short_description text        NOT NULL DEFAULT '',
    long_description  text        NOT NULL DEFAULT '',
    visibility        text        NOT NULL DEFAULT 'private' CHECK (visibility IN ('public', 'private')),
    immutable_tags    boolean     NOT NULL DEFAULT false,
    scan_on_push      boolean     NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (namespace_id, name)
);

-- Team permissions on repositories of the team's organization.
CREATE TABLE team_repository_access (
    team_id       uuid NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
    repository_id uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    access_level  text NOT NULL CHECK (access_level IN ('read-only', 'read-write', 'admin')),
    PRIMARY KEY (team_id, repository_id)
);
CREATE INDEX team_repository_access_by_repository ON team_repository_access (repository_id);

-- Content-addressed objects in registry storage (layers, configs, and the
-- raw bytes of manifests), stored once however many repositories use them.
-- A row exists only once the object is completely stored and verified.
CREATE TABLE blobs (
    digest     text        PRIMARY KEY CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    size       bigint      NOT NULL CHECK (size >= 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Which repositories may serve a blob: the Distribution API only serves a
-- blob through a repository it was pushed to (or mounted into).
CREATE TABLE repository_blobs (
    repository_id uuid NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest        text NOT NULL REFERENCES blobs (digest),
    PRIMARY KEY (repository_id, digest)
);
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);

-- An in-progress blob upload. Its parts are objects in storage under
-- `_uploads/<id>/`, so any replica can continue an upload another one began.
CREATE TABLE blob_uploads (
    id            uuid        PRIMARY KEY,
    repository_id uuid        NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    -- [{"key": "...", "size": N, "sha256": "<hex>"}] in upload order
    parts         jsonb       NOT NULL DEFAULT '[]',
    size          bigint      NOT NULL DEFAULT 0,
    started_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Image manifests, image indexes and artifacts (Helm charts) per repository,
-- with what the web UI shows about them. The bytes are the blob `digest`.
CREATE TABLE manifests (
    repository_id     uuid        NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    digest            text        NOT NULL REFERENCES blobs (digest),
    media_type        text        NOT NULL,
    -- the config blob's media type; a Helm chart is
    -- application/vnd.cncf.helm.config.v1+json
    config_media_type text        NOT NULL DEFAULT '',
    artifact_type     text        NOT NULL DEFAULT '',
    os                text        NOT NULL DEFAULT '',
    architecture      text        NOT NULL DEFAULT '',
    -- manifest, config and layers (or, for an index, its children) in bytes
    size              bigint      NOT NULL,
    pushed_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, digest)
);

-- What a manifest points at: its config and layers (blobs) or, for an index,
-- its child manifests. A full backup copies exactly these.
CREATE TABLE manifest_references (
    repository_id   uuid NOT NULL,
    manifest_digest text NOT NULL,
    position        int  NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('config', 'layer', 'manifest')),
    digest          text NOT NULL,
    size            bigint NOT NULL,
    PRIMARY KEY (repository_id, manifest_digest, position),
    FOREIGN KEY (repository_id, manifest_digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);

CREATE TABLE tags (
    repository_id uuid        NOT NULL,
    name          text        NOT NULL,
    digest        text        NOT NULL,
    pushed_by     text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, name),
    FOREIGN KEY (repository_id, digest) REFERENCES manifests (repository_id, digest) ON DELETE CASCADE
);

-- Notary (TUF) trust data per repository: every version of every role's
-- metadata file, as signed by the client.
CREATE TABLE notary_tuf_files (
    repository_id uuid        NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,
    role          text        NOT NULL,
    version       bigint      NOT NULL CHECK (version >= 1),
    sha256        text        NOT NULL,
    data          bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (repository_id, role, version)
);

-- Scan data (what `msr backup --ignore-scan-data` leaves out): one result per
-- scanned manifest digest, with its per-layer components and vulnerabilities.
CREATE TABLE scan_results (
    manifest_digest text        PRIMARY KEY,
    scanner         text        NOT NULL,
    scanned_at      timestamptz NOT NULL,
    critical        int         NOT NULL DEFAULT 0,
    high            int         NOT NULL DEFAULT 0,
    medium          int         NOT NULL DEFAULT 0,
    low             int         NOT NULL DEFAULT 0,
    negligible      int         NOT NULL DEFAULT 0
);

CREATE TABLE scan_layers (
    manifest_digest text  NOT NULL REFERENCES scan_results (manifest_digest) ON DELETE CASCADE,
    position        int   NOT NULL,
    layer_digest    text  NOT NULL,
    -- [{"name","version","vulnerabilities":[{"id","severity"}]}]
    components      jsonb NOT NULL,
    PRIMARY KEY (manifest_digest, position)
);

-- The vulnerability database: never backed up; re-downloaded after a restore.
CREATE TABLE vulnerability_feed (
    singleton  boolean     PRIMARY KEY DEFAULT true CHECK (singleton),
    version    text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE vulnerabilities (
    id           text  PRIMARY KEY,
    severity     text  NOT NULL CHECK (severity IN ('critical', 'high', 'medium', 'low', 'negligible', 'unknown')),
    summary      text  NOT NULL DEFAULT '',
    cvss_score   real,
    feed_version text  NOT NULL
);
