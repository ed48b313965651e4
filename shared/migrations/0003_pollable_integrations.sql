-- Whether the status-poller can ask an integration's target about its
-- deliveries: polling is on, the integration is live, and the target can be
-- asked (salesync, or a webhook with a status URL). One definition for the
-- forwarder (which arms `poll_after` on delivery only for these) and the
-- status-poller (which retires deliveries whose integration stopped being
-- pollable). Deliveries to other integrations never enter the poller's
-- queue, so a busy non-polling integration costs the poller nothing.
ALTER TABLE integrations ADD COLUMN pollable boolean NOT NULL
    GENERATED ALWAYS AS (
        poll_status AND deleted_at IS NULL
        AND (target_kind = 'salesync' OR coalesce(btrim(status_url), '') <> '')
    ) STORED;
