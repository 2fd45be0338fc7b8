-- coffer secrets on Postgres: one row per secret (the head), one row per version (the
-- envelope). Names compare bytewise (COLLATE "C"), as on SQLite, so listing order and
-- prefix ranges do not depend on the server's locale.
CREATE TABLE IF NOT EXISTS coffer_secrets (
    scope        TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    version      BIGINT  NOT NULL,               -- the latest version
    deleted      BOOLEAN NOT NULL DEFAULT FALSE, -- soft-deleted: hidden, history kept
    provider     TEXT,
    kind         TEXT    NOT NULL,
    description  TEXT,
    tags         TEXT    NOT NULL DEFAULT '[]',  -- JSON array of strings
    env_name     TEXT,
    expires_at   BIGINT,                         -- Unix milliseconds
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    last_used_at BIGINT,
    usage_count  BIGINT  NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, name)
);

CREATE TABLE IF NOT EXISTS coffer_secret_versions (
    scope      TEXT COLLATE "C" NOT NULL,
    name       TEXT COLLATE "C" NOT NULL,
    version    BIGINT NOT NULL,
    key_id     BIGINT NOT NULL,  -- the keyring key that sealed the envelope
    ciphertext BYTEA  NOT NULL,  -- coffer envelope v1, bound to (scope, name, version)
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, name, version),
    FOREIGN KEY (scope, name) REFERENCES coffer_secrets (scope, name) ON DELETE CASCADE
);

CREATE INDEX IF NOT EXISTS coffer_secret_versions_key_id ON coffer_secret_versions (key_id);

-- Check values (a one-way fingerprint) of the keys that sealed this store's envelopes.
CREATE TABLE IF NOT EXISTS coffer_key_checks (
    key_id      BIGINT PRIMARY KEY,
    check_value TEXT NOT NULL
);
