-- A dead-letter replay goes, by default, to where the integration points
-- now (its current URL), not to the URL recorded with the delivery; a
-- replay may also keep the recorded one. Either way the audit row says
-- where that replay was sent, so the history survives the delivery's
-- `target_url` being moved to the new target. NULL for discards and for
-- replays made before this migration.
ALTER TABLE dead_letter_actions ADD COLUMN target_url text;
