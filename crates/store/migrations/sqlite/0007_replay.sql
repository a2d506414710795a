-- Replay memory shared by the nodes of a gateway cluster (see the PostgreSQL migration);
-- on the embedded store a gateway is one process and keeps it in memory, but the table
-- exists so that both backends have the same schema.
CREATE TABLE replay_seen (
    key          BLOB PRIMARY KEY,
    message_time INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX replay_seen_time ON replay_seen (message_time);
