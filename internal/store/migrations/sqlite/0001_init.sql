-- Times are Unix microseconds (INTEGER) so that the same queries serve SQLite
-- and PostgreSQL. Users and apps are deleted softly: orphaned keys still name
-- the app and the creator they lost.
CREATE TABLE platform_admins (
	token_hash TEXT PRIMARY KEY,
	created_at INTEGER NOT NULL
);

CREATE TABLE orgs (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE UNIQUE INDEX orgs_name ON orgs (name);

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	email      TEXT NOT NULL,
	role       TEXT NOT NULL CHECK (role IN ('owner', 'aura_owner', 'member')),
	token_hash TEXT NOT NULL UNIQUE,
	created_at INTEGER NOT NULL,
	deleted_at INTEGER
);
CREATE UNIQUE INDEX users_email ON users (org_id, email) WHERE deleted_at IS NULL;

CREATE TABLE apps (
	id            TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES orgs (id),
	name          TEXT NOT NULL,
	kind          TEXT NOT NULL CHECK (kind IN ('cloud_function', 'dashboard_app')),
	verifier_hash TEXT NOT NULL UNIQUE,
	created_at    INTEGER NOT NULL,
	created_by    TEXT NOT NULL REFERENCES users (id),
	deleted_at    INTEGER
);
CREATE UNIQUE INDEX apps_name ON apps (org_id, name) WHERE deleted_at IS NULL;

CREATE TABLE api_keys (
	id            TEXT PRIMARY KEY,
	org_id        TEXT NOT NULL REFERENCES orgs (id),
	app_id        TEXT NOT NULL REFERENCES apps (id),
	name          TEXT NOT NULL,
	prefix        TEXT NOT NULL,
	hash          TEXT NOT NULL UNIQUE,
	expires_at    INTEGER NOT NULL,
	created_at    INTEGER NOT NULL,
	created_by    TEXT NOT NULL REFERENCES users (id),
	revoked_at    INTEGER,
	revoked_by    TEXT,
	orphaned_at   INTEGER,
	orphan_reason TEXT CHECK (orphan_reason IN ('app_deleted', 'creator_deleted')),
	last_used_at  INTEGER
);
CREATE UNIQUE INDEX api_keys_name ON api_keys (app_id, name) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_org ON api_keys (org_id, created_at) WHERE revoked_at IS NULL;
CREATE INDEX api_keys_creator ON api_keys (created_by) WHERE revoked_at IS NULL;

CREATE TABLE secrets (
	org_id     TEXT NOT NULL REFERENCES orgs (id),
	name       TEXT NOT NULL,
	ciphertext BLOB NOT NULL,
	created_at INTEGER NOT NULL,
	created_by TEXT NOT NULL,
	PRIMARY KEY (org_id, name)
);

CREATE TABLE audit (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	org_id TEXT NOT NULL,
	at     INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	target TEXT NOT NULL,
	detail TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_org ON audit (org_id, id);

-- seq comes from counters.event_seq, taken in the writing transaction; see
-- store.go for why that keeps the feed gap-free.
CREATE TABLE events (
	seq    INTEGER PRIMARY KEY,
	org_id TEXT NOT NULL,
	app_id TEXT NOT NULL,
	type   TEXT NOT NULL,
	key_id TEXT NOT NULL DEFAULT '',
	at     INTEGER NOT NULL
);
CREATE INDEX events_app ON events (app_id, seq);

CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('event_seq', 0), ('events_pruned_through', 0);
