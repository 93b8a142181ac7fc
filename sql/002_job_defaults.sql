-- 002: defaults that let the bulk path stream rows with COPY (which cannot call now() per row):
-- a job inserted without them is due now and counts as published now.
ALTER TABLE jobs ALTER COLUMN run_at SET DEFAULT now();
ALTER TABLE jobs ALTER COLUMN published_at SET DEFAULT now();
