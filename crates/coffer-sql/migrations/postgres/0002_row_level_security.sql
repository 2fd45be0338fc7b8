-- Optional row-level security. `coffer_enable_row_level_security()` (called by PgStore
-- when its option is on) limits both secret tables to the scope in the transaction-local
-- setting `coffer.scope`, which the store sets on every call with
-- set_config('coffer.scope', <scope>, true). The table owner is exempt (no FORCE), so
-- migrations and key rotation run as the owner and the application as another role.
CREATE OR REPLACE FUNCTION coffer_enable_row_level_security() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    -- One caller at a time, so processes starting together do not race on CREATE POLICY.
    PERFORM pg_advisory_xact_lock(hashtext('coffer_enable_row_level_security'));
    ALTER TABLE coffer_secrets ENABLE ROW LEVEL SECURITY;
    ALTER TABLE coffer_secret_versions ENABLE ROW LEVEL SECURITY;
    IF NOT EXISTS (SELECT 1 FROM pg_policies
                   WHERE schemaname = current_schema() AND tablename = 'coffer_secrets'
                     AND policyname = 'coffer_scope') THEN
        CREATE POLICY coffer_scope ON coffer_secrets
            USING (scope = current_setting('coffer.scope', true))
            WITH CHECK (scope = current_setting('coffer.scope', true));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_policies
                   WHERE schemaname = current_schema() AND tablename = 'coffer_secret_versions'
                     AND policyname = 'coffer_scope') THEN
        CREATE POLICY coffer_scope ON coffer_secret_versions
            USING (scope = current_setting('coffer.scope', true))
            WITH CHECK (scope = current_setting('coffer.scope', true));
    END IF;
END;
$$;
