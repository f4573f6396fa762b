-- Jiuzhu store, schema 12 (PostgreSQL): archives. A finished case older than the configured
-- age moves out of the live tables into these, with its whole history chain, its task
-- rows and its delivered effects (and their delivery records), in one transaction per
-- batch (store/archive.rs). The columns are those of the live tables, so the chain is
-- verified by the same code; archived_at is when the case moved. No foreign keys: the
-- rows are never written again, only read. Tables rather than partitions of the live
-- ones: see ARCHITECTURE.md ("Archives").
CREATE TABLE archived_instances (
    id              TEXT    PRIMARY KEY,
    process_id      TEXT    NOT NULL,
    process_version BIGINT NOT NULL,
    status          TEXT    NOT NULL,
    outcome         TEXT,
    unit            TEXT    COLLATE "C" NOT NULL,
    state           JSONB   NOT NULL,
    version         BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    history_hash    TEXT    NOT NULL,
    head_mac        TEXT,
    archived_at     BIGINT NOT NULL
);
CREATE INDEX archived_instances_by_process ON archived_instances (process_id, status);
CREATE INDEX archived_instances_by_unit ON archived_instances (unit);

CREATE TABLE archived_history (
    instance_id TEXT    NOT NULL,
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT,
    event       TEXT    NOT NULL,
    node        TEXT,
    data        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    scheme      INTEGER NOT NULL,
    state_hash  TEXT,
    PRIMARY KEY (instance_id, seq)
);

CREATE TABLE archived_tasks (
    id          TEXT    PRIMARY KEY,
    instance_id TEXT    NOT NULL,
    node_id     TEXT    NOT NULL,
    label       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    unit        TEXT    COLLATE "C" NOT NULL,
    assignee    TEXT,
    due_at      BIGINT,
    created_at  BIGINT NOT NULL,
    form        JSONB   NOT NULL,
    claimed_at  BIGINT,
    closed_at   BIGINT,
    roles       JSONB   NOT NULL,
    provisional BIGINT NOT NULL
);
CREATE INDEX archived_tasks_by_instance ON archived_tasks (instance_id);

CREATE TABLE archived_outbox (
    id              TEXT    PRIMARY KEY,
    instance_id     TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         JSONB   NOT NULL,
    created_at      BIGINT NOT NULL,
    status          TEXT    NOT NULL,
    attempts        BIGINT NOT NULL,
    claims          BIGINT NOT NULL,
    last_error      TEXT,
    last_attempt_at BIGINT,
    delivered_at    BIGINT
);
CREATE INDEX archived_outbox_by_instance ON archived_outbox (instance_id);

CREATE TABLE archived_outbox_deliveries (
    outbox_id    TEXT    NOT NULL,
    delivery_key TEXT    NOT NULL,
    delivered_at BIGINT NOT NULL,
    PRIMARY KEY (outbox_id, delivery_key)
);

-- The archiver picks finished cases by age: oldest end first.
CREATE INDEX instances_finished ON instances (updated_at) WHERE status <> 'active';
-- A case's rows in the live tables, which the archiver moves and checks (nothing in flight)
-- and the foreign keys check when it deletes the instance row. Each costs a step that
-- writes a task, timer or outbox row one more index entry.
CREATE INDEX outbox_by_instance ON outbox (instance_id);
CREATE INDEX tasks_by_instance ON tasks (instance_id);
CREATE INDEX timers_by_instance ON timers (instance_id);
