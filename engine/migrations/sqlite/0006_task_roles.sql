-- Jiuzhu store, schema 6 (SQLite): every role of a task is a candidate.
-- tasks.roles keeps all of a task's roles (JSON array; tasks.role stays the
-- first, for display). task_roles is the inbox: one row per role of each OPEN
-- task (deleted when the task closes), carrying what the queue query filters
-- and sorts on, so a queue page is still picked from one covering index. The
-- holder (assignee) is mirrored here by the step that claims, releases or
-- hands on the task.
ALTER TABLE tasks ADD COLUMN roles TEXT NOT NULL DEFAULT '[]';

-- Open tasks take their roles from their case's state (which has them all);
-- anything else keeps the one role the row had.
UPDATE tasks SET roles = COALESCE(
    CASE WHEN closed_at IS NULL THEN (
        SELECT json_extract(st.value, '$.roles')
        FROM instances i, json_each(i.state, '$.tasks') st
        WHERE i.id = tasks.instance_id AND json_extract(st.value, '$.id') = tasks.id
    ) END,
    json_array(role));

CREATE TABLE task_roles (
    task_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    unit       TEXT    NOT NULL,
    due_at     INTEGER,
    created_at INTEGER NOT NULL,
    assignee   TEXT,
    PRIMARY KEY (task_id, role)
);
CREATE INDEX task_roles_inbox ON task_roles (role, unit, due_at, created_at, task_id, assignee);

INSERT OR IGNORE INTO task_roles (task_id, role, unit, due_at, created_at, assignee)
SELECT t.id, r.value, t.unit, t.due_at, t.created_at, t.assignee
FROM tasks t, json_each(t.roles) r
WHERE t.closed_at IS NULL;

-- The queue no longer reads the tasks table's own inbox index.
DROP INDEX tasks_inbox;
