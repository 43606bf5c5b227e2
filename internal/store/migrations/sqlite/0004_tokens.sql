-- Verifier tokens and user tokens get tables of their own, so that an app
-- can roll its sidecar's token with an overlap and a user can hold several
-- tokens, each with its own expiry. Only keyed hashes are kept, as before.
--
-- An app has one current verifier token (expires_at NULL) and at most one
-- previous one counting down to its expires_at. A retired token's row is
-- deleted; an expired one is deleted when the app next mints one.
CREATE TABLE verifier_tokens (
	id           TEXT PRIMARY KEY,
	app_id       TEXT NOT NULL REFERENCES apps (id),
	org_id       TEXT NOT NULL,
	hash         TEXT NOT NULL UNIQUE,
	prefix       TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	created_by   TEXT NOT NULL,
	expires_at   INTEGER,
	last_used_at INTEGER
);
CREATE INDEX verifier_tokens_app ON verifier_tokens (app_id);

-- Every app's token so far becomes its current token. Its display prefix
-- was never kept, so it shows as akv_ alone. The id derives from the app's,
-- as it does for the first token of an app created from now on.
INSERT INTO verifier_tokens (id, app_id, org_id, hash, prefix, created_at, created_by)
	SELECT 'vtk_' || substr(id, 5), id, org_id, verifier_hash, 'akv_', created_at, created_by FROM apps;

-- apps.verifier_hash stays (SQLite cannot drop a UNIQUE column) but holds no
-- hash any more: a value that no token hashes to and that stays unique.
UPDATE apps SET verifier_hash = 'moved:' || id;

CREATE TABLE user_tokens (
	id         TEXT PRIMARY KEY,
	user_id    TEXT NOT NULL REFERENCES users (id),
	org_id     TEXT NOT NULL,
	name       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	prefix     TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER
);
CREATE INDEX user_tokens_user ON user_tokens (user_id);

-- Every live user's token so far (the bootstrap owner's among them) becomes
-- one of their tokens, named "initial", which they can list and delete.
INSERT INTO user_tokens (id, user_id, org_id, name, hash, prefix, created_at)
	SELECT 'utk_' || substr(id, 5), id, org_id, 'initial', token_hash, 'aku_', created_at FROM users WHERE deleted_at IS NULL;
UPDATE users SET token_hash = 'moved:' || id;

-- The token a console session was started with, so that revoking the token
-- ends the session too. Sessions started before this migration have none.
ALTER TABLE console_sessions ADD COLUMN token_id TEXT;
CREATE INDEX console_sessions_token ON console_sessions (token_id);
