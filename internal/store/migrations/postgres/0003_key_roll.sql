-- Rolling a key (issue 14). A rolled key names the key it was rolled to,
-- and the new key the key it was rolled from. Both are plain ids, not
-- foreign keys: the old row is marked in the same transaction before the
-- new one exists.
ALTER TABLE api_keys ADD COLUMN rolled_from TEXT;
ALTER TABLE api_keys ADD COLUMN rolled_to TEXT;

-- A key rolled away keeps working through its overlap under the same name
-- as the key that replaced it, so it leaves the name's uniqueness: the name
-- belongs to the newest live key. rolled_to is set once, in the row-locked
-- UPDATE that decides a roll, so of two concurrent rolls one wins and the
-- other matches nothing.
DROP INDEX api_keys_name;
CREATE UNIQUE INDEX api_keys_name ON api_keys (app_id, name) WHERE revoked_at IS NULL AND rolled_to IS NULL;

-- Which key a secret holds, when it was saved from a key (Save As Secret or
-- a roll): the roll finds the secrets to update by it. NULL for a secret
-- set by hand, which a roll never overwrites.
ALTER TABLE secrets ADD COLUMN key_id TEXT;
CREATE INDEX secrets_key ON secrets (key_id) WHERE key_id IS NOT NULL;

-- Secrets saved at key creation before this migration: their key is the
-- one whose key.create audit record, written in the same transaction at
-- the same instant, says it was saved under that name.
UPDATE secrets SET key_id = (
	SELECT a.target FROM audit a JOIN api_keys k ON k.id = a.target
	WHERE a.org_id = secrets.org_id AND a.action = 'key.create' AND a.at = secrets.created_at
		AND a.detail = 'app ' || k.app_id || ', saved as secret ' || secrets.name
	ORDER BY a.id DESC LIMIT 1
);

-- A key.expiry_changed event carries the key's new expiry.
ALTER TABLE events ADD COLUMN expires_at BIGINT;
