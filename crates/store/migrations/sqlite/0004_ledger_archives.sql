-- Archives and retention of the message logs. Records are purged only once an archive
-- file holds them, and only whole archives at a time: `pruned` is the number of leading
-- records purged (the end of an archive), `frontier` the roots of the complete subtrees
-- over them (concatenated 32-byte hashes, largest first), from which the tree's later
-- roots and proofs are still computed.
ALTER TABLE ledger_logs ADD COLUMN pruned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ledger_logs ADD COLUMN frontier BLOB NOT NULL DEFAULT x'';

-- The archive files written, one row each, numbered from 1 per log; each holds records
-- first_idx..end_idx and the SHA-256 of its file (the next archive links to it).
CREATE TABLE ledger_archives (
    log_id           TEXT NOT NULL,
    sequence         INTEGER NOT NULL,
    first_idx        INTEGER NOT NULL,
    end_idx          INTEGER NOT NULL,
    file_name        TEXT NOT NULL,
    sha256           BLOB NOT NULL CHECK (length(sha256) = 32),
    last_recorded_at INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (log_id, sequence)
);
