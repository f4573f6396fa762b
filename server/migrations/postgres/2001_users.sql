-- The server's users, sessions, API tokens and failed logins (versions 2000–2999).
-- Times are epoch milliseconds UTC, as in the engine's tables.
CREATE TABLE server_users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    unit TEXT NOT NULL,
    -- JSON array of role ids.
    roles TEXT NOT NULL,
    -- argon2id PHC string; NULL: the user cannot log in yet.
    password_hash TEXT,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE server_sessions (
    -- SHA-256 of the cookie's value: a database dump yields no usable session.
    id_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES server_users (id),
    csrf_token TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL
);
CREATE INDEX server_sessions_user ON server_sessions (user_id);

CREATE TABLE server_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES server_users (id),
    token_hash TEXT NOT NULL UNIQUE,
    label TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at BIGINT
);

-- One row per failed login, by account name and by address, so every node sees the
-- same counts.
CREATE TABLE server_login_failures (
    subject TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX server_login_failures_subject ON server_login_failures (subject, at);
