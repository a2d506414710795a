-- PKI state: every certificate the CA issued, its revocation, and named counters.
CREATE TABLE pki_certificates (
    serial            TEXT PRIMARY KEY,      -- lower-case hex, unsigned big-endian
    profile           TEXT NOT NULL,         -- root-ca | auth | sign | ocsp | tsa
    subject           TEXT NOT NULL,
    identity          TEXT,                  -- federation identifier, if any
    der               BYTEA NOT NULL,
    not_before        BIGINT NOT NULL,      -- Unix seconds
    not_after         BIGINT NOT NULL,
    issued_at         BIGINT NOT NULL,
    revoked_at        BIGINT,
    revocation_reason TEXT
);
CREATE INDEX pki_certificates_identity ON pki_certificates (identity);

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);

CREATE TABLE settings (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
