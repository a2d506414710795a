-- The gateways' tamper-evident message logs, one per gateway (`log_id`): the records in
-- append order, the size of each log (kept apart so that it survives a retention purge
-- and serialises appenders), and the signed tree heads with their timestamp tokens.
CREATE TABLE ledger_logs (
    log_id TEXT PRIMARY KEY,
    size   BIGINT NOT NULL
);

CREATE TABLE ledger_records (
    log_id      TEXT NOT NULL,
    idx         BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    leaf_hash   BYTEA NOT NULL CHECK (length(leaf_hash) = 32),
    record      BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL,
    PRIMARY KEY (log_id, idx)
);

CREATE INDEX ledger_records_message_id ON ledger_records (log_id, message_id);

CREATE TABLE ledger_heads (
    log_id     TEXT NOT NULL,
    size       BIGINT NOT NULL,
    head       BYTEA NOT NULL,
    tsa_token  BYTEA,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (log_id, size)
);
