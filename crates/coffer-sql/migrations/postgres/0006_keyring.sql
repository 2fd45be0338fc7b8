-- The keyring kept in the store (coffer_store::keys::SharedKeyring): one document, the
-- data keys sealed under a KEK that never reaches the database, with a generation that a
-- writer names (check-and-set). The engine keeps the rules: one row; a write moves the
-- generation up by exactly one; the row is never deleted (losing it loses every key);
-- and every write is announced on the coffer_secrets channel as
-- {"keyring":{"generation":N}}, whoever wrote it.
CREATE TABLE IF NOT EXISTS coffer_keyring (
    id         SMALLINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT   NOT NULL CHECK (generation >= 1),
    document   BYTEA    NOT NULL CHECK (length(document) > 0),
    updated_at BIGINT   NOT NULL
);

CREATE OR REPLACE FUNCTION coffer_keyring_rules() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'coffer: the keyring is never deleted' USING ERRCODE = 'CF002';
    ELSIF TG_OP = 'INSERT' AND NEW.generation <> 1 THEN
        RAISE EXCEPTION 'coffer: keyring generation must start at 1' USING ERRCODE = 'CF002';
    ELSIF TG_OP = 'UPDATE' AND (NEW.generation <> OLD.generation + 1 OR NEW.id <> OLD.id) THEN
        RAISE EXCEPTION 'coffer: keyring generation must grow by one' USING ERRCODE = 'CF002';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION coffer_keyring_announce() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('coffer_secrets',
        json_build_object('keyring', json_build_object('generation', NEW.generation))::text);
    RETURN NULL;
END;
$$;

DROP TRIGGER IF EXISTS coffer_keyring_rules ON coffer_keyring;
CREATE TRIGGER coffer_keyring_rules
BEFORE INSERT OR UPDATE OR DELETE ON coffer_keyring
FOR EACH ROW EXECUTE FUNCTION coffer_keyring_rules();

DROP TRIGGER IF EXISTS coffer_keyring_announce ON coffer_keyring;
CREATE TRIGGER coffer_keyring_announce
AFTER INSERT OR UPDATE ON coffer_keyring
FOR EACH ROW EXECUTE FUNCTION coffer_keyring_announce();

-- TRUNCATE skips row triggers.
CREATE OR REPLACE FUNCTION coffer_keyring_no_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'coffer: the keyring is never deleted' USING ERRCODE = 'CF002';
END;
$$;

DROP TRIGGER IF EXISTS coffer_keyring_no_truncate ON coffer_keyring;
CREATE TRIGGER coffer_keyring_no_truncate
BEFORE TRUNCATE ON coffer_keyring
FOR EACH STATEMENT EXECUTE FUNCTION coffer_keyring_no_truncate();
