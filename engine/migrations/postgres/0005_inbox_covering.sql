-- Jiuzhu store, schema 5 (PostgreSQL): the inbox index covers the queue query.
-- A queue page is picked by an index-only scan (role, unit, due date, then the
-- sort's tie-breakers and the assignee filter), and only the page's rows are
-- read from the table.
DROP INDEX tasks_inbox;
CREATE INDEX tasks_inbox ON tasks (role, unit, due_at) INCLUDE (created_at, id, assignee)
    WHERE closed_at IS NULL;
