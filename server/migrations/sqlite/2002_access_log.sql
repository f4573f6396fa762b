-- Every view of unmasked personal data (who, what, when, from where), for the
-- administrators: the law on personal information asks that such access be recorded.
-- Times are epoch milliseconds UTC.
CREATE TABLE server_access_log (
    at BIGINT NOT NULL,
    user_id TEXT NOT NULL,
    -- What was shown unmasked: `case`, `history` or `cases` (a listing).
    what TEXT NOT NULL,
    -- The case shown, or the listing's filter.
    subject TEXT NOT NULL,
    address TEXT NOT NULL,
    -- `session` or `token`.
    via TEXT NOT NULL
);
CREATE INDEX server_access_log_at ON server_access_log (at);
