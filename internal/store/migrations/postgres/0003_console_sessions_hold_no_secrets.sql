-- A console session's row no longer holds anything secret: the session
-- acts as its user, loaded live by user_id, and the only state left is the
-- one-time notice (flash), which is no secret. The sealed blob of 0002 held
-- the user's token and keys just created: it goes, and the rows that held
-- it go too (everyone logs in once more). DROP COLUMN alone would leave the
-- old values in the table's pages; the store runs VACUUM FULL on the table
-- after this migration, which rewrites it without them.
DELETE FROM console_sessions;
ALTER TABLE console_sessions DROP COLUMN sealed;
ALTER TABLE console_sessions ADD COLUMN flash TEXT NOT NULL DEFAULT '';
