-- Every delivery is updated at least once (the forwarder's pending →
-- delivered). PostgreSQL can make that update HOT — the new row version goes
-- on the same page and no index gets a new entry — only if no column any
-- index uses, in its key or in its WHERE, changes, and the page has room.
-- Before this migration `state` (both partial indexes' WHERE) and
-- `updated_at` (the dead-letter list's key) changed on every update, so each
-- one added an entry to all three of the table's indexes (primary key,
-- dedupe key, sale) — a third of the forwarder's write and index bloat
-- until vacuum. The partial indexes now key on columns that the common path
-- leaves alone.
--
-- Cost on a large table: the migration runs in one transaction holding the
-- table's lock while it checks both constraints and builds both indexes
-- (each a full scan) and rewrites the rows whose watch had ended (before,
-- a final status left `poll_after` set): 45 s for a million deliveries
-- (1.6 GB, nine in ten to rewrite) on the 2-core benchmark machine, during
-- which sales are still accepted but none is forwarded.

-- When the delivery died; set exactly while it is dead (the forwarder sets
-- it, a replay clears it). The dead-letter list sorts and pages by it.
ALTER TABLE deliveries ADD COLUMN dead_at timestamptz;
UPDATE deliveries SET dead_at = updated_at WHERE state = 'dead';
ALTER TABLE deliveries ADD CONSTRAINT deliveries_dead_at_while_dead
    CHECK ((state = 'dead') = (dead_at IS NOT NULL));
DROP INDEX deliveries_dead;
CREATE INDEX deliveries_dead ON deliveries (tenant_id, dead_at DESC, id DESC)
    WHERE dead_at IS NOT NULL;

-- `poll_after` is set only while the status-poller watches the delivery
-- (delivered forward, target status not final); a final status clears it.
UPDATE deliveries SET poll_after = NULL
    WHERE NOT (state = 'delivered' AND purpose = 'forward' AND NOT target_status_final);
ALTER TABLE deliveries ADD CONSTRAINT deliveries_polled_while_watched
    CHECK (poll_after IS NULL
           OR (state = 'delivered' AND purpose = 'forward' AND NOT target_status_final));
DROP INDEX deliveries_to_poll;
CREATE INDEX deliveries_to_poll ON deliveries (poll_after) WHERE poll_after IS NOT NULL;

-- Room on each page for the updated version (a row is ~1.5 KB with its
-- body; pruning frees the old version's space for the next update).
ALTER TABLE deliveries SET (fillfactor = 80);
