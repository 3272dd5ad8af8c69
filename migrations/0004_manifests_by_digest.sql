-- Scan results are keyed by manifest digest alone, so storing one (does any
-- repository hold this image?) and reading one (which repositories hold it,
-- and may the caller read any of them?) look manifests up by digest, across
-- repositories. Without this index each such lookup reads the whole table.
CREATE INDEX manifests_by_digest ON manifests (digest);
