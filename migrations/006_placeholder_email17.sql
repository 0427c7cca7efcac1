-- PLACEHOLDER (branch email17): migration numbers 005–007 belong to work merged from other
-- branches (screened forwarding, missed calls, conference durability); tern refuses a gap, so
-- this branch holds them with no-ops until then. Delete this file when merging the branch that
-- owns 006: tern reports "Duplicate migration 6" until it is gone.
SELECT 1;
