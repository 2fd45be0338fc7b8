-- Retired keys, enforced by the engine. A key is retired by setting its retired_at; from
-- then on no envelope and no head MAC may be written under it, so an instance whose
-- keyring is out of date (another machine rotated and retired) fails its write instead
-- of sealing a value no current keyring can open. Retiring is refused while anything is
-- still under the key, counted from the envelopes' own headers and the MACs' key ids
-- (as the table owner, so row-level security does not hide another scope's rows), and a
-- retired key never comes back.
ALTER TABLE coffer_key_checks ADD COLUMN IF NOT EXISTS retired_at BIGINT;

CREATE OR REPLACE FUNCTION coffer_key_is_live(id BIGINT) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM coffer_key_checks WHERE key_id = id AND retired_at IS NULL)
$$;

CREATE OR REPLACE FUNCTION coffer_versions_need_a_live_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT coffer_key_is_live(NEW.key_id) THEN
        RAISE EXCEPTION 'coffer: key retired: this keyring is out of date (key %)', NEW.key_id
            USING ERRCODE = 'CF001';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION coffer_head_macs_need_a_live_key() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.mac IS NOT NULL AND length(NEW.mac) >= 4 AND NOT coffer_key_is_live(
        (get_byte(NEW.mac, 0)::bigint << 24) + (get_byte(NEW.mac, 1) << 16)
        + (get_byte(NEW.mac, 2) << 8) + get_byte(NEW.mac, 3)
    ) THEN
        RAISE EXCEPTION 'coffer: key retired: this keyring is out of date (head MAC)'
            USING ERRCODE = 'CF001';
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION coffer_retire_only_unused_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    header BYTEA := substr(int8send(OLD.key_id), 5, 4);
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'coffer: key checks are kept; retire a key instead' USING ERRCODE = 'CF002';
    END IF;
    IF OLD.retired_at IS NOT NULL AND NEW.retired_at IS DISTINCT FROM OLD.retired_at THEN
        RAISE EXCEPTION 'coffer: a retired key cannot come back (key %)', OLD.key_id
            USING ERRCODE = 'CF002';
    END IF;
    IF OLD.retired_at IS NULL AND NEW.retired_at IS NOT NULL AND (
        EXISTS (SELECT 1 FROM coffer_secret_versions WHERE key_id = OLD.key_id)
        OR EXISTS (SELECT 1 FROM coffer_secret_versions WHERE substr(ciphertext, 2, 4) = header)
        OR EXISTS (SELECT 1 FROM coffer_secrets WHERE substr(mac, 1, 4) = header)
    ) THEN
        RAISE EXCEPTION 'coffer: key still in use: rewrap before retiring it (key %)', OLD.key_id
            USING ERRCODE = 'CF002';
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER IF EXISTS coffer_versions_need_a_live_key ON coffer_secret_versions;
CREATE TRIGGER coffer_versions_need_a_live_key
    BEFORE INSERT OR UPDATE OF key_id, ciphertext ON coffer_secret_versions
    FOR EACH ROW EXECUTE FUNCTION coffer_versions_need_a_live_key();

DROP TRIGGER IF EXISTS coffer_head_macs_need_a_live_key ON coffer_secrets;
CREATE TRIGGER coffer_head_macs_need_a_live_key
    BEFORE INSERT OR UPDATE OF mac ON coffer_secrets
    FOR EACH ROW EXECUTE FUNCTION coffer_head_macs_need_a_live_key();

DROP TRIGGER IF EXISTS coffer_retire_only_unused_keys ON coffer_key_checks;
CREATE TRIGGER coffer_retire_only_unused_keys
    BEFORE UPDATE OF retired_at OR DELETE ON coffer_key_checks
    FOR EACH ROW EXECUTE FUNCTION coffer_retire_only_unused_keys();
