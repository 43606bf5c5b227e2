-- Console sessions live here, not in a replica's memory, so that any
-- replica serves any browser and a restart logs nobody out. id is the
-- SHA-256 (hex) of the session cookie, never the cookie; sealed is an
-- AES-256-GCM blob (the user's token, the one-time notice, the keys held
-- for Save As Secret) under a key derived from the master key, with id as
-- additional data. user_id and expires_at stay in clear for cleanup.
CREATE TABLE console_sessions (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	sealed     BYTEA NOT NULL,
	created_at BIGINT NOT NULL,
	expires_at BIGINT NOT NULL
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
