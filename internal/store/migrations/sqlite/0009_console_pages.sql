-- The console's Users, Secrets and Audit log pages and OIDC sign-in
-- (issue 19). updated_at is when a secret's value last changed (a roll
-- of the key it holds); NULL for a secret never changed since created.
ALTER TABLE secrets ADD COLUMN updated_at INTEGER;
-- The Audit log page filters an organization's log by action and actor,
-- newest first, a page at a time.
CREATE INDEX audit_org_action ON audit (org_id, action, id);
CREATE INDEX audit_org_actor ON audit (org_id, actor, id);
-- Sign-in with OpenID Connect finds the user by verified email.
CREATE INDEX users_by_email ON users (email) WHERE deleted_at IS NULL;
-- A sign-in with OpenID Connect that finished: id is the SHA-256 of its
-- flow cookie (signed by the service; the state, nonce and PKCE verifier
-- are derived from it, so none is stored). The row lives until the flow
-- would have expired anyway: a flow completes once, on any replica, and a
-- replayed callback finds its row. Starting a sign-in writes nothing.
CREATE TABLE oidc_logins (
	id         TEXT PRIMARY KEY,
	expires_at INTEGER NOT NULL
);
CREATE INDEX oidc_logins_expiry ON oidc_logins (expires_at);
