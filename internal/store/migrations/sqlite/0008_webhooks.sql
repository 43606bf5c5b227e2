-- Webhooks (issue 18). An organization's endpoints, their signing secrets
-- (sealed like the Secrets store's values; the previous one keeps signing
-- until expires_at during a rotation) and the delivery queue. A message is
-- written in the transaction of the change it tells of, so none is lost
-- or made twice; seq orders an endpoint's messages, taken from its
-- endpoint's last_seq under that row's lock.
CREATE TABLE webhook_endpoints (
	id              TEXT PRIMARY KEY,
	org_id          TEXT NOT NULL REFERENCES orgs (id),
	url             TEXT NOT NULL,
	description     TEXT NOT NULL DEFAULT '',
	events          TEXT NOT NULL,
	enabled         INTEGER NOT NULL,
	disabled_reason TEXT NOT NULL DEFAULT '',
	created_at      INTEGER NOT NULL,
	created_by      TEXT NOT NULL,
	last_seq        INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

CREATE TABLE webhook_secrets (
	id          TEXT PRIMARY KEY,
	endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	ciphertext  BLOB NOT NULL,
	created_at  INTEGER NOT NULL,
	expires_at  INTEGER
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

CREATE TABLE webhook_messages (
	id              TEXT PRIMARY KEY,
	endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	org_id          TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	type            TEXT NOT NULL,
	payload         TEXT NOT NULL,
	created_at      INTEGER NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease_until     INTEGER NOT NULL DEFAULT 0,
	last_attempt_at INTEGER,
	last_status     INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	last_latency_us INTEGER NOT NULL DEFAULT 0,
	delivered_at    INTEGER,
	UNIQUE (endpoint_id, seq)
);
-- Each endpoint's oldest pending message, which is all a claim looks at.
CREATE INDEX webhook_messages_pending ON webhook_messages (endpoint_id, seq) WHERE status = 'pending';
CREATE INDEX webhook_messages_endpoint ON webhook_messages (endpoint_id, seq);

-- key.expiring and key.expired, once per key and threshold ('7d', '1d',
-- 'expired'), whichever replica sees it first: the primary key decides.
CREATE TABLE webhook_expiry_notices (
	key_id    TEXT NOT NULL,
	threshold TEXT NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (key_id, threshold)
);
