-- Leaked keys (issue 15). leaked_at is when a leak of the key was first
-- reported (GitHub secret scanning); revoke_reason says why a revoked key
-- was revoked: NULL for a revoke by a user, 'leaked' for one made by a
-- leak report. Keys from before this migration have neither, which is
-- what they are: never reported, revoked by hand.
ALTER TABLE api_keys ADD COLUMN leaked_at INTEGER;
ALTER TABLE api_keys ADD COLUMN revoke_reason TEXT CHECK (revoke_reason IN ('leaked'));
-- The leaked=true lists read the few leaked keys of an org, not all.
CREATE INDEX api_keys_leaked ON api_keys (org_id) WHERE leaked_at IS NOT NULL AND revoked_at IS NULL;
