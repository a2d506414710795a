-- Replay memory shared by the nodes of a gateway cluster: SHA-256 of (message id, NUL,
-- signature) for every accepted message, with the message's time (Unix milliseconds) so
-- that keys older than the accepted clock skew can be forgotten. UNLOGGED: the table is
-- written on every exchange and needs no WAL; after a crash of the database server it is
-- empty, which only re-opens the clock-skew window (minutes) to a replay.
CREATE UNLOGGED TABLE replay_seen (
    key          BYTEA PRIMARY KEY,
    message_time BIGINT NOT NULL
);
CREATE INDEX replay_seen_time ON replay_seen (message_time);
