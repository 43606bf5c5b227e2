-- Usage the sidecars report (issue 17): requests per key, hour and
-- outcome. hour is the Unix microsecond at which the hour starts, as the
-- key service's clock bucketed the report. org_id and app_id are the key's,
-- copied so that an app's or an organization's totals read without a join.
-- Keys are never deleted (a revoke keeps the row), so no foreign key: the
-- insert itself joins api_keys to take only the reporting app's keys.
CREATE TABLE key_usage (
	key_id       TEXT NOT NULL,
	hour         INTEGER NOT NULL,
	org_id       TEXT NOT NULL,
	app_id       TEXT NOT NULL,
	allowed      INTEGER NOT NULL DEFAULT 0,
	rate_limited INTEGER NOT NULL DEFAULT 0,
	forbidden    INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (key_id, hour)
);
CREATE INDEX key_usage_app ON key_usage (app_id, hour);
CREATE INDEX key_usage_org ON key_usage (org_id, hour);
-- The retention prune deletes by hour alone.
CREATE INDEX key_usage_hour ON key_usage (hour);
