-- Operational monitoring: one row per exchange seen by a gateway (`server_id`), with the
-- fields X-Road's operational monitoring keeps. Times are Unix milliseconds; rows older
-- than the gateway's retention are purged by `request_in`.
CREATE TABLE opmon_records (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    server_id         TEXT NOT NULL,
    side              TEXT NOT NULL CHECK (side IN ('client', 'producer')),
    message_id        TEXT NOT NULL,
    client            TEXT NOT NULL,
    service           TEXT NOT NULL,
    client_server     TEXT,
    service_server    TEXT,
    user_id           TEXT NOT NULL,
    issue             TEXT NOT NULL,
    represented_party TEXT NOT NULL,
    service_type      TEXT NOT NULL,
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    request_in        BIGINT NOT NULL,
    request_out       BIGINT,
    response_in       BIGINT,
    response_out      BIGINT NOT NULL,
    request_size      BIGINT,
    response_size     BIGINT,
    status            BIGINT,
    succeeded         BOOLEAN NOT NULL,
    fault_code        TEXT,
    fault_string      TEXT
);

CREATE INDEX opmon_records_time ON opmon_records (server_id, request_in);
CREATE INDEX opmon_records_client ON opmon_records (server_id, client, request_in);
CREATE INDEX opmon_records_purge ON opmon_records (request_in);
