-- A console session's row no longer holds anything secret: the session
-- acts as its user, loaded live by user_id, and the only state left is the
-- one-time notice (flash), which is no secret. The sealed blob of 0002 held
-- the user's token and keys just created, under a key derived from the
-- master key that sits beside this file: it goes, and the rows that held
-- it go too (everyone logs in once more). The store runs VACUUM right after
-- this migration, so neither these rows nor those that earlier logouts
-- deleted stay behind in the file's free pages.
DELETE FROM console_sessions;
ALTER TABLE console_sessions DROP COLUMN sealed;
ALTER TABLE console_sessions ADD COLUMN flash TEXT NOT NULL DEFAULT '';
