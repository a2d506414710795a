-- Message bodies kept beside their log records (a subsystem's `message_body_logging` of
-- `full` or `encrypted`). They are not part of the record's leaf hash: the record holds
-- the body digests (which the senders signed), so a stored body is checked by re-hashing
-- it, and bodies can be removed before their records without breaking the tree.
-- `encrypted_to` is NULL for bodies in clear, else the id of the X25519 key they were
-- encrypted to.
CREATE TABLE ledger_bodies (
    log_id       TEXT NOT NULL,
    idx          BIGINT NOT NULL,
    encrypted_to TEXT,
    request      BYTEA,
    response     BYTEA,
    PRIMARY KEY (log_id, idx)
);
