-- Pausing an integration (docs/contracts.md, "Pausing an integration"): its
-- deliveries are held in the database, not sent, until it is resumed. Unlike
-- `enabled = false` (sales are not forwarded at all, the decision says why),
-- a pause loses nothing: resuming sends every held delivery, under its
-- delivery id as before.

-- Who paused it, when and why; all three set together, or none.
ALTER TABLE integrations
    ADD COLUMN paused_at    timestamptz,
    ADD COLUMN paused_by    text CHECK (paused_by IN ('tenant', 'operator', 'auto')),
    ADD COLUMN pause_reason text,
    ADD CONSTRAINT integrations_pause_recorded
        CHECK ((paused_at IS NULL) = (paused_by IS NULL)
               AND (paused_at IS NULL) = (pause_reason IS NULL)),
    -- Since when every request to its target has failed (no success since):
    -- set by the forwarder at the first failure after a success, cleared at
    -- the next success, so it is written only when the target's health
    -- flips. `failing_delivery_id` is the delivery whose failed attempt
    -- began the streak. The auto-pause check reads only these.
    ADD COLUMN failing_since       timestamptz,
    ADD COLUMN failing_delivery_id uuid;

-- A held delivery: `state = 'held'`, and `held_at` set exactly while held
-- (as `dead_at` while dead, 0005). The index keys on `held_at`, which the
-- common update (pending -> delivered) leaves NULL, so that update stays HOT.
-- Both constraints are NOT VALID: the new state list is a superset of the
-- old one and no existing row is held, so every existing row satisfies them
-- and checking 1.6 GB under the table's lock would prove nothing. New and
-- updated rows are checked as always.
ALTER TABLE deliveries ADD COLUMN held_at timestamptz;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_state_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_state_check
    CHECK (state IN ('pending', 'retrying', 'held', 'delivered', 'dead')) NOT VALID;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_held_at_while_held
    CHECK ((state = 'held') = (held_at IS NOT NULL)) NOT VALID;
-- Resume finds an integration's held deliveries through this (empty unless
-- something is paused; building it still scans the table once).
CREATE INDEX deliveries_held ON deliveries (integration_id, held_at, id)
    WHERE held_at IS NOT NULL;
