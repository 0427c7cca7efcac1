-- PLACEHOLDER (branch recordings19): migration numbers 005–014 belong to work merged from other
-- branches (screening, notices, email, …); tern refuses a gap, so this branch holds them with
-- no-ops until then. Delete this file when merging the branch that owns 006: tern reports
-- "Duplicate migration 6" until it is gone.
SELECT 1;
