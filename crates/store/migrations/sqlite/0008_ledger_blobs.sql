-- Values that message-log records repeat (the signers' certificates and OCSP responses),
-- kept once per log by SHA-256; a stored record refers to them (see `pack.rs`). `last_used`
-- (Unix seconds, rewritten at most daily) lets a retention purge drop the ones no record
-- left refers to.
CREATE TABLE ledger_blobs (
    log_id    TEXT NOT NULL,
    hash      BLOB NOT NULL CHECK (length(hash) = 32),
    content   BLOB NOT NULL,
    last_used INTEGER NOT NULL,
    PRIMARY KEY (log_id, hash)
);
