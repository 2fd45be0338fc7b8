-- coffer secrets: one row per secret (the head), one row per version (the envelope).
CREATE TABLE IF NOT EXISTS coffer_secrets (
    scope        TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    version      INTEGER NOT NULL,            -- the latest version
    deleted      INTEGER NOT NULL DEFAULT 0,  -- soft-deleted: hidden, history kept
    provider     TEXT,
    kind         TEXT    NOT NULL,
    description  TEXT,
    tags         TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    env_name     TEXT,
    expires_at   INTEGER,                     -- Unix milliseconds
    active       INTEGER NOT NULL DEFAULT 1,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    usage_count  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, name)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS coffer_secret_versions (
    scope      TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    key_id     INTEGER NOT NULL,   -- the keyring key that sealed the envelope
    ciphertext BLOB    NOT NULL,   -- coffer envelope v1, bound to (scope, name, version)
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, name, version),
    FOREIGN KEY (scope, name) REFERENCES coffer_secrets (scope, name) ON DELETE CASCADE
) WITHOUT ROWID;

CREATE INDEX IF NOT EXISTS coffer_secret_versions_key_id ON coffer_secret_versions (key_id);

-- Check values (a one-way fingerprint) of the keys that sealed this store's envelopes,
-- so a wrong master key is reported when the store opens, not as failed decryptions.
CREATE TABLE IF NOT EXISTS coffer_key_checks (
    key_id      INTEGER PRIMARY KEY,
    check_value TEXT NOT NULL
);
