-- The MAC over each secret's head state (coffer_store::backend::integrity), written when
-- values are sealed: the keyring key id (4 bytes) and HMAC-SHA256. With sealing on, a
-- secret without one is refused until `coffer keys migrate` adopts its current state.
ALTER TABLE coffer_vault_meta ADD COLUMN IF NOT EXISTS mac BYTEA;
