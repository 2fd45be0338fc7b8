-- coffer's metadata beside Supabase Vault's secrets. vault.secrets keeps the value (and
-- coffer's description in its description column), so other Supabase consumers read a
-- plain value from vault.decrypted_secrets; this table keeps what Vault has no column
-- for. Keyed by the Vault secret's id; no foreign key, because on Supabase the vault
-- schema belongs to the extension.
CREATE TABLE IF NOT EXISTS coffer_vault_meta (
    vault_id     UUID   PRIMARY KEY,
    scope        TEXT COLLATE "C" NOT NULL,
    name         TEXT COLLATE "C" NOT NULL,
    version      BIGINT NOT NULL,
    provider     TEXT,
    kind         TEXT   NOT NULL,
    tags         TEXT   NOT NULL DEFAULT '[]',
    env_name     TEXT,
    expires_at   BIGINT,              -- Unix milliseconds
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    usage_count  BIGINT NOT NULL DEFAULT 0,
    key_id       BIGINT               -- the coffer key that sealed the value, when sealing is on
);
CREATE INDEX IF NOT EXISTS coffer_vault_meta_scope_name ON coffer_vault_meta (scope, name);
CREATE INDEX IF NOT EXISTS coffer_vault_meta_key_id ON coffer_vault_meta (key_id) WHERE key_id IS NOT NULL;

CREATE TABLE IF NOT EXISTS coffer_vault_key_checks (
    key_id      BIGINT PRIMARY KEY,
    check_value TEXT NOT NULL
);
