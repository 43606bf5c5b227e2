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
	enabled         BIGINT NOT NULL,
	disabled_reason TEXT NOT NULL DEFAULT '',
	created_at      BIGINT NOT NULL,
	created_by      TEXT NOT NULL,
	last_seq        BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id);

CREATE TABLE webhook_secrets (
	id          TEXT PRIMARY KEY,
	endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	ciphertext  BYTEA NOT NULL,
	created_at  BIGINT NOT NULL,
	expires_at  BIGINT
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id);

CREATE TABLE webhook_messages (
	id              TEXT PRIMARY KEY,
	endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
	org_id          TEXT NOT NULL,
	seq             BIGINT NOT NULL,
	type            TEXT NOT NULL,
	payload         TEXT NOT NULL,
	created_at      BIGINT NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
	attempts        BIGINT NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL,
	lease_until     BIGINT NOT NULL DEFAULT 0,
	last_attempt_at BIGINT,
	last_status     BIGINT NOT NULL DEFAULT 0,
	last_error      TEXT NOT NULL DEFAULT '',
	last_latency_us BIGINT NOT NULL DEFAULT 0,
	delivered_at    BIGINT,
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
	at        BIGINT NOT NULL,
	PRIMARY KEY (key_id, threshold)
);
