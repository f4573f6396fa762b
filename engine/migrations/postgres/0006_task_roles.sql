-- Jiuzhu store, schema 6 (PostgreSQL): every role of a task is a candidate.
-- tasks.roles keeps all of a task's roles (tasks.role stays the first, for
-- display). task_roles is the inbox: one row per role of each OPEN task
-- (deleted when the task closes), carrying what the queue query filters and
-- sorts on, so a queue page is still picked by an index-only scan. The holder
-- (assignee) is mirrored here by the step that claims, releases or hands on
-- the task.
ALTER TABLE tasks ADD COLUMN roles JSONB NOT NULL DEFAULT '[]';

-- Open tasks take their roles from their case's state (which has them all);
-- anything else keeps the one role the row had.
UPDATE tasks SET roles = COALESCE(
    CASE WHEN tasks.closed_at IS NULL THEN (
        SELECT st -> 'roles'
        FROM instances i, jsonb_array_elements(i.state -> 'tasks') st
        WHERE i.id = tasks.instance_id AND st ->> 'id' = tasks.id
        LIMIT 1
    ) END,
    jsonb_build_array(tasks.role));

CREATE TABLE task_roles (
    task_id    TEXT    NOT NULL,
    role       TEXT    NOT NULL,
    unit       TEXT    COLLATE "C" NOT NULL,
    due_at     BIGINT,
    created_at BIGINT  NOT NULL,
    assignee   TEXT,
    PRIMARY KEY (task_id, role)
);
CREATE INDEX task_roles_inbox ON task_roles (role, unit, due_at) INCLUDE (created_at, task_id, assignee);

INSERT INTO task_roles (task_id, role, unit, due_at, created_at, assignee)
SELECT t.id, r.role, t.unit, t.due_at, t.created_at, t.assignee
FROM tasks t, jsonb_array_elements_text(t.roles) AS r(role)
WHERE t.closed_at IS NULL
ON CONFLICT DO NOTHING;

-- The queue no longer reads the tasks table's own inbox index.
DROP INDEX tasks_inbox;
