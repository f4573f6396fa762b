-- Single-use tokens of the web pages' forms (CSRF): one row per rendered form, deleted
-- when the form is posted, so a replayed or double-submitted form is refused.
CREATE TABLE server_form_tokens (
    -- SHA-256 of the token; the page holds the token itself.
    token_hash TEXT PRIMARY KEY,
    -- The session the form was rendered for (its id_hash).
    session_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX server_form_tokens_created ON server_form_tokens (created_at);
