-- Console sessions live here, not in a replica's memory, so that any
-- replica serves any browser and a restart logs nobody out. id is the
-- SHA-256 (hex) of the session cookie, never the cookie. Nothing secret is
-- kept: the session acts as its user, loaded live by user_id, and flash is
-- the one-time notice for the next page. A key just created in the console
-- never comes here: it travels in the page, sealed for Save As Secret.
CREATE TABLE console_sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	flash      TEXT NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
