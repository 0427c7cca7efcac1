-- A leg's row is written once per status callback (initiated, ringing, answered, completed) and
-- once more by its Dial's end. None of those writes changes an indexed column, so each can be a
-- HOT update (the new version on the same page, no new index entries) when the page has room:
-- leave a third of each new page for them. Existing pages keep theirs until rewritten.
ALTER TABLE legs SET (fillfactor = 70);
