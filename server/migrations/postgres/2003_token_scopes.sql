-- An API token may act with one of its user's roles only, and on a unit within the
-- user's (NULL: the user's roles, the user's unit).
ALTER TABLE server_tokens ADD COLUMN role TEXT;
ALTER TABLE server_tokens ADD COLUMN unit TEXT;
