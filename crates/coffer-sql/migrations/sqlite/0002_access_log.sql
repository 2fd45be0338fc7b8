-- The audit trail of coffer's SQL audit sink: one row per audit event, never a value.
CREATE TABLE IF NOT EXISTS secret_access_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,   -- Unix milliseconds
    scope       TEXT,               -- NULL: store-wide (rewrap)
    name        TEXT,               -- NULL: a listing or store-wide
    version     INTEGER,
    operation   TEXT    NOT NULL,   -- get, put, metadata, list, delete, destroy, rewrap
    outcome     TEXT    NOT NULL,   -- attempt, ok, error
    error_kind  TEXT,
    actor       TEXT,
    workflow_id TEXT,
    node_id     TEXT,
    ip          TEXT,
    user_agent  TEXT
);

CREATE INDEX IF NOT EXISTS secret_access_log_scope_name ON secret_access_log (scope, name, at);
CREATE INDEX IF NOT EXISTS secret_access_log_at ON secret_access_log (at);
