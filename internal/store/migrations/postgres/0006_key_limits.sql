-- Limits a key carries to the sidecars (issue 17). A rate limit is
-- rate_requests per rate_per_seconds (1, 60 or 3600), both set or both
-- NULL; allowed_cidrs is a comma-separated list of client networks in
-- canonical CIDR form, NULL when the key may be used from anywhere. Keys
-- from before this migration have neither, which is what they were: no
-- limit, any network.
ALTER TABLE api_keys ADD COLUMN rate_requests INTEGER CHECK (rate_requests > 0);
ALTER TABLE api_keys ADD COLUMN rate_per_seconds INTEGER CHECK (rate_per_seconds IN (1, 60, 3600));
ALTER TABLE api_keys ADD COLUMN allowed_cidrs TEXT;
