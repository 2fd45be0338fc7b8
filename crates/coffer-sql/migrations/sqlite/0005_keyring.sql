-- The keyring kept in the store (coffer_store::keys::SharedKeyring): one document, the
-- data keys sealed under a KEK that never reaches this file, with a generation that a
-- writer names (check-and-set). The engine keeps the rules: one row; a write moves the
-- generation up by exactly one; the row is never deleted (losing it loses every key).
CREATE TABLE IF NOT EXISTS coffer_keyring (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL CHECK (generation >= 1),
    document   BLOB    NOT NULL CHECK (length(document) > 0),
    updated_at INTEGER NOT NULL
) STRICT;

CREATE TRIGGER IF NOT EXISTS coffer_keyring_starts_at_one
BEFORE INSERT ON coffer_keyring
WHEN NEW.generation <> 1
BEGIN
    SELECT RAISE(ABORT, 'coffer: keyring generation must start at 1');
END;

CREATE TRIGGER IF NOT EXISTS coffer_keyring_moves_by_one
BEFORE UPDATE ON coffer_keyring
WHEN NEW.generation <> OLD.generation + 1 OR NEW.id <> OLD.id
BEGIN
    SELECT RAISE(ABORT, 'coffer: keyring generation must grow by one');
END;

CREATE TRIGGER IF NOT EXISTS coffer_keyring_is_kept
BEFORE DELETE ON coffer_keyring
BEGIN
    SELECT RAISE(ABORT, 'coffer: the keyring is never deleted');
END;
