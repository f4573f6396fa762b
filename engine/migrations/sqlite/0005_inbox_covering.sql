-- Jiuzhu store, schema 5 (SQLite): the inbox index covers the queue query.
-- A queue page is picked from the index alone (role, unit, due date, then the
-- sort's tie-breakers and the assignee filter), and only the page's rows are
-- read from the table: a cold unit costs a few index pages, not one random
-- table page per open task of the unit. closed_at (always NULL here) is listed
-- too: without it SQLite does not count the partial index's own condition as
-- covered and reads the table row of every candidate.
DROP INDEX tasks_inbox;
CREATE INDEX tasks_inbox ON tasks (role, unit, due_at, created_at, id, assignee, closed_at)
    WHERE closed_at IS NULL;
