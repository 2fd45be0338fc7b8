-- Retired keys, enforced by the engine. A key is retired by setting its retired_at; from
-- then on no envelope and no head MAC may be written under it, so an instance whose
-- keyring is out of date (another machine rotated and retired) fails its write instead
-- of sealing a value no current keyring can open. Retiring is refused while anything is
-- still under the key, counted from the envelopes' own headers and the MACs' key ids,
-- and a retired key never comes back.
ALTER TABLE coffer_key_checks ADD COLUMN retired_at INTEGER;

CREATE TRIGGER IF NOT EXISTS coffer_versions_need_a_live_key
BEFORE INSERT ON coffer_secret_versions
WHEN NOT EXISTS (SELECT 1 FROM coffer_key_checks
                 WHERE key_id = NEW.key_id AND retired_at IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'coffer: key retired: this keyring is out of date');
END;

CREATE TRIGGER IF NOT EXISTS coffer_rewraps_need_a_live_key
BEFORE UPDATE OF key_id, ciphertext ON coffer_secret_versions
WHEN NOT EXISTS (SELECT 1 FROM coffer_key_checks
                 WHERE key_id = NEW.key_id AND retired_at IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'coffer: key retired: this keyring is out of date');
END;

CREATE TRIGGER IF NOT EXISTS coffer_head_macs_need_a_live_key
BEFORE UPDATE OF mac ON coffer_secrets
WHEN NEW.mac IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM coffer_key_checks
                 WHERE printf('%08X', key_id) = hex(substr(NEW.mac, 1, 4))
                   AND retired_at IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'coffer: key retired: this keyring is out of date');
END;

CREATE TRIGGER IF NOT EXISTS coffer_new_head_macs_need_a_live_key
BEFORE INSERT ON coffer_secrets
WHEN NEW.mac IS NOT NULL
 AND NOT EXISTS (SELECT 1 FROM coffer_key_checks
                 WHERE printf('%08X', key_id) = hex(substr(NEW.mac, 1, 4))
                   AND retired_at IS NULL)
BEGIN
    SELECT RAISE(ABORT, 'coffer: key retired: this keyring is out of date');
END;

CREATE TRIGGER IF NOT EXISTS coffer_retire_only_unused_keys
BEFORE UPDATE OF retired_at ON coffer_key_checks
WHEN OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL
 AND (EXISTS (SELECT 1 FROM coffer_secret_versions WHERE key_id = OLD.key_id)
      OR EXISTS (SELECT 1 FROM coffer_secret_versions
                 WHERE hex(substr(ciphertext, 2, 4)) = printf('%08X', OLD.key_id))
      OR EXISTS (SELECT 1 FROM coffer_secrets
                 WHERE hex(substr(mac, 1, 4)) = printf('%08X', OLD.key_id)))
BEGIN
    SELECT RAISE(ABORT, 'coffer: key still in use: rewrap before retiring it');
END;

CREATE TRIGGER IF NOT EXISTS coffer_retired_keys_stay_retired
BEFORE UPDATE OF retired_at ON coffer_key_checks
WHEN OLD.retired_at IS NOT NULL AND NEW.retired_at IS NOT OLD.retired_at
BEGIN
    SELECT RAISE(ABORT, 'coffer: a retired key cannot come back');
END;

CREATE TRIGGER IF NOT EXISTS coffer_key_checks_are_kept
BEFORE DELETE ON coffer_key_checks
BEGIN
    SELECT RAISE(ABORT, 'coffer: key checks are kept; retire a key instead');
END;
