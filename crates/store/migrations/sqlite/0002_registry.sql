-- The central registry: every registry object (member, gateway, group, approved CA/TSA,
-- API token, registration request) as a JSON body with a revision for optimistic
-- concurrency; the audit log; and every published global configuration.
CREATE TABLE registry_objects (
    kind       TEXT NOT NULL,
    id         TEXT NOT NULL,
    body       TEXT NOT NULL,
    revision   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (kind, id)
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     INTEGER NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    result TEXT NOT NULL,
    detail TEXT NOT NULL
);

CREATE TABLE globalconf_versions (
    version      INTEGER PRIMARY KEY,
    generated_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    envelope     BLOB NOT NULL
);
