-- Archives and retention of the message logs. Records are purged only once an archive
-- file holds them, and only whole archives at a time: `pruned` is the number of leading
-- records purged (the end of an archive), `frontier` the roots of the complete subtrees
-- over them (concatenated 32-byte hashes, largest first), from which the tree's later
-- roots and proofs are still computed.
ALTER TABLE ledger_logs ADD COLUMN pruned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE ledger_logs ADD COLUMN frontier BYTEA NOT NULL DEFAULT '\x'::bytea;

-- The archive files written, one row each, numbered from 1 per log; each holds records
-- first_idx..end_idx and the SHA-256 of its file (the next archive links to it).
CREATE TABLE ledger_archives (
    log_id           TEXT NOT NULL,
    sequence         BIGINT NOT NULL,
    first_idx        BIGINT NOT NULL,
    end_idx          BIGINT NOT NULL,
    file_name        TEXT NOT NULL,
    sha256           BYTEA NOT NULL CHECK (length(sha256) = 32),
    last_recorded_at BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (log_id, sequence)
);
