-- The MAC over each head's state (coffer_store::backend::integrity): the keyring key id
-- (4 bytes) and HMAC-SHA256. A head without one is refused until `coffer keys migrate`
-- adopts the state an older coffer wrote.
ALTER TABLE coffer_secrets ADD COLUMN mac BLOB;

-- Which key sealed an envelope is read from the envelope's own header (bytes 2-5), never
-- from the key_id column, which anyone who can write the table could edit; this index
-- serves the rewrap and key-usage queries on that expression.
CREATE INDEX IF NOT EXISTS coffer_secret_versions_sealed_by
    ON coffer_secret_versions (substr(ciphertext, 2, 4));
