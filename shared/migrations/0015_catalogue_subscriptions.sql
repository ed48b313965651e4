-- The provider's (B's) catalogue change events (issue 17): a partner's Agent
-- subscribes a URL (`PUT /v1/integration/subscription`, services/console
-- routes/subscription.rs), and each change to what its organization is
-- granted (a product or flow written, deactivated or withdrawn, a grant
-- given or revoked) files a signed `catalogue.changed` callback to it, in
-- the same transaction as the change (console catalogue_events.rs;
-- docs/contracts.md, "Catalogue change callbacks").
--
-- One subscription per Agent: a PUT replaces the URL and keeps the secret
-- (every answer repeats it), so A re-subscribing at each import never
-- invalidates a callback already signed or in flight; DELETE and PUT again
-- rotates it.
CREATE TABLE catalogue_subscriptions (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    agent_id        uuid NOT NULL UNIQUE REFERENCES agents (id) ON DELETE CASCADE,
    url             text NOT NULL,
    -- The Standard Webhooks secret (whsec_), an encrypted JSON string as
    -- tenants.webhook_secret_enc: the forwarder signs with either alike.
    secret_enc      bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX catalogue_subscriptions_organization
    ON catalogue_subscriptions (tenant_id, organization_id);

-- A callback is a delivery like any other (the forwarder signs, retries and
-- dead-letters it; the dead-letter routes replay or discard it), of purpose
-- `catalogue_callback`. It is about no sale: `sale_id` is NULL for it, and
-- only for it (its forward command carries the nil UUID as its envelope's
-- sale id). `subscription_id` names whose secret signs it; deleting the
-- subscription leaves it NULL, and the forwarder then dead-letters what is
-- still pending for it ("catalogue subscription not found").
--
-- Cost on a large table: dropping NOT NULL is a catalogue change; the
-- CHECKs and the foreign key are NOT VALID (every existing row is a sale's
-- forward or status webhook, which they allow), so nothing is validated;
-- the two indexes are partial and start empty (building each still reads
-- the table once). New and updated rows are checked as always. The forwarder's
-- common update changes none of these columns, so it stays HOT (0005).
ALTER TABLE deliveries ALTER COLUMN sale_id DROP NOT NULL;
ALTER TABLE deliveries ADD COLUMN subscription_id uuid;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_subscription_fkey
    FOREIGN KEY (subscription_id) REFERENCES catalogue_subscriptions (id)
    ON DELETE SET NULL NOT VALID;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_purpose_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_purpose_check
    CHECK (purpose IN ('forward', 'status_webhook', 'catalogue_callback')) NOT VALID;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_sale_unless_catalogue
    CHECK ((sale_id IS NULL) = (purpose = 'catalogue_callback')) NOT VALID;
-- For the foreign key's SET NULL when a subscription is deleted.
CREATE INDEX deliveries_subscription ON deliveries (subscription_id)
    WHERE subscription_id IS NOT NULL;
-- Retention finds settled callbacks through this (its walk over sales'
-- deliveries joins their sale, so it never meets them).
CREATE INDEX deliveries_sale_less ON deliveries (id) WHERE sale_id IS NULL;
