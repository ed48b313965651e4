-- Dead-letter operations: what a dead delivery needs to be replayed exactly as
-- it was first sent, and the record of what people did about it.

-- The request body exactly as the forwarder first sent it (condition-filter
-- writes it for forwards, ingest for status webhooks). A replay re-sends
-- this, not a re-mapping: the integration's mapping may have changed since.
-- NULL for deliveries created before this migration (not replayable).
ALTER TABLE deliveries ADD COLUMN body jsonb;

-- Set when a person discards a dead delivery; the delivery stays 'dead', it
-- is only hidden from the default dead-letter list. Cleared by a replay.
ALTER TABLE deliveries ADD COLUMN discarded_at timestamptz;

-- The dead-letter list: a tenant's dead deliveries, newest first
-- (updated_at is when the delivery died).
CREATE INDEX deliveries_dead ON deliveries(tenant_id, updated_at DESC, id DESC)
    WHERE state = 'dead';

-- Every replay and discard: who, when, and (for discards) why.
CREATE TABLE dead_letter_actions (
    id              bigserial PRIMARY KEY,
    delivery_id     uuid NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    action          text NOT NULL CHECK (action IN ('replay', 'discard')),
    reason          text,
    -- the API token that asked; NULL when an operator used the CLI
    actor_token_id  uuid,
    via             text NOT NULL CHECK (via IN ('api', 'cli')),
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX dead_letter_actions_delivery ON dead_letter_actions(delivery_id);
