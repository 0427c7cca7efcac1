-- PLACEHOLDER (branch notify17): migration numbers 005–019 belong to work merged from other
-- branches (screening, email, recordings, …); tern refuses a gap, so this branch holds them with
-- no-ops until then. Delete this file when merging the branch that owns its number: tern
-- reports "Duplicate migration N" until it is gone.
SELECT 1;
