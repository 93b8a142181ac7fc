-- 041: the trigger functions find their tables whoever fires them. An application that enqueues
-- in its own transaction (Client.submit(..., connection=conn)) writes jobs by qualified name on a
-- connection whose search_path is its own, and a trigger naming job_counts or jobs unqualified
-- would look for them there. Each function is pinned to the schema it was created in.
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION job_counts_apply() SET search_path = %I', current_schema());
    EXECUTE format('ALTER FUNCTION job_counts_reset() SET search_path = %I', current_schema());
    EXECUTE format('ALTER FUNCTION job_settle_dependants() SET search_path = %I', current_schema());
END
$$;
