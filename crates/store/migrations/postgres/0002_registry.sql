-- The central registry: every registry object (member, gateway, group, approved CA/TSA,
-- API token, registration request) as a JSON body with a revision for optimistic
-- concurrency; the audit log; and every published global configuration.
CREATE TABLE registry_objects (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    revision   BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE audit_log (
    id     BIGSERIAL PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE globalconf_versions (
    version      BIGINT PRIMARY KEY,
    generated_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    envelope     BYTEA NOT NULL
);
