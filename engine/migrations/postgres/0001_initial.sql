-- Jiuzhu store, schema 1 (PostgreSQL). Times are epoch milliseconds UTC (BIGINT).

CREATE TABLE deployments (
    process_id  TEXT    NOT NULL,
    version     BIGINT NOT NULL,
    hash        TEXT    NOT NULL,
    source      TEXT    NOT NULL,
    deployed_at BIGINT NOT NULL,
    PRIMARY KEY (process_id, version)
);

-- history_hash is the head of the instance's history chain: it lets a step
-- extend the chain without reading the history table, and lets verification
-- notice rows cut off the end of the chain.
CREATE TABLE instances (
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
    FOREIGN KEY (process_id, process_version) REFERENCES deployments (process_id, version)
);
CREATE INDEX instances_by_process ON instances (process_id, status);
CREATE INDEX instances_by_unit ON instances (unit);

-- Append-only; seq equals the instance version the step produced.
-- data is kept as the exact canonical JSON text that was hashed.
CREATE TABLE history (
    instance_id TEXT    NOT NULL REFERENCES instances (id),
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    actor       TEXT,
    event       TEXT    NOT NULL,
    node        TEXT,
    data        TEXT    NOT NULL,
    prev_hash   TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    PRIMARY KEY (instance_id, seq)
);

CREATE TABLE tasks (
    id          TEXT    PRIMARY KEY,
    instance_id TEXT    NOT NULL REFERENCES instances (id),
    node_id     TEXT    NOT NULL,
    label       TEXT    NOT NULL,
    role        TEXT    NOT NULL,
    unit        TEXT    COLLATE "C" NOT NULL,
    assignee    TEXT,
    due_at      BIGINT,
    created_at  BIGINT NOT NULL,
    form        JSONB   NOT NULL,
    claimed_at  BIGINT,
    closed_at   BIGINT
);
-- Units use the "C" collation so that a unit's subtree (prefix + '/') is a
-- byte-order range, the same as on SQLite.
-- The inbox: open tasks by role, unit (range scans for a unit's subtree), due date.
CREATE INDEX tasks_inbox ON tasks (role, unit, due_at) WHERE closed_at IS NULL;

-- available_at is due_at until a node claims the timer, then the end of its
-- lease: one index answers "what may be claimed now", expired leases included.
CREATE TABLE timers (
    id           TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL REFERENCES instances (id),
    due_at       BIGINT NOT NULL,
    payload      JSONB   NOT NULL,
    available_at BIGINT NOT NULL,
    claimed_by   TEXT
);
CREATE INDEX timers_available ON timers (available_at);

-- Same lease scheme as timers: available_at is the next attempt or the lease end.
CREATE TABLE outbox (
    id           TEXT    PRIMARY KEY,
    instance_id  TEXT    NOT NULL REFERENCES instances (id),
    kind         TEXT    NOT NULL,
    payload      JSONB   NOT NULL,
    created_at   BIGINT NOT NULL,
    status       TEXT    NOT NULL DEFAULT 'pending',
    attempts     BIGINT NOT NULL DEFAULT 0,
    available_at BIGINT NOT NULL,
    claimed_by   TEXT,
    last_error   TEXT,
    delivered_at BIGINT
);
CREATE INDEX outbox_pending ON outbox (available_at) WHERE status = 'pending';
