-- The reseller's (A's) side of a tenant-to-tenant integration (issue 17):
-- what it imported of the provider's (B's) catalogue, how it maps its own
-- flows and questions onto B's, and when it last heard from B. Written by
-- console (routes/imports.rs, catalogue_sync.rs); the existing columns
-- `removed_product_policy` and `last_synced_at` (0001) take their meaning
-- here: the removal policy, and when a sync last changed something.
ALTER TABLE integrations
    -- B's control plane, where its partner routes answer; NULL: target_url
    -- (one address in front of both of B's services).
    ADD COLUMN provider_url                text,
    -- When B was last asked (a sync, a callback's or the reconciliation's).
    ADD COLUMN catalogue_checked_at        timestamptz,
    -- A callback from B said something changed; cleared by the sync after.
    ADD COLUMN catalogue_sync_requested_at timestamptz,
    -- B's secret for its signed change callbacks (whsec_), encrypted.
    ADD COLUMN callback_secret_enc         bytea,
    -- B's granted flows as of the last sync.
    ADD COLUMN provider_flows              jsonb NOT NULL DEFAULT '[]',
    -- catalogue::FlowMapping and catalogue::QuestionMapping.
    ADD COLUMN flow_mapping                jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN question_mapping            jsonb NOT NULL DEFAULT '{}',
    -- The last mapping check: its mismatches, when it ran, and since when
    -- it has found mismatches the check before it did not (cleared when a
    -- check finds none).
    ADD COLUMN mapping_mismatches          jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN mapping_checked_at          timestamptz,
    ADD COLUMN mapping_flagged_at          timestamptz,
    -- What the last sync that changed something changed (catalogue::Change).
    ADD COLUMN last_sync_changes           jsonb NOT NULL DEFAULT '[]';

-- The reconciliation pass looks for integrations with imports that are due.
CREATE INDEX integrations_catalogue_due ON integrations (catalogue_checked_at)
    WHERE deleted_at IS NULL AND catalogue_checked_at IS NOT NULL;

-- A's copy of each of B's products it imported.
CREATE TABLE imported_products (
    integration_id uuid NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
    tenant_id      uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key            text NOT NULL,
    -- B's ProductVersion as copied; its version is `source_version`.
    body           jsonb NOT NULL,
    source_version integer NOT NULL,
    -- false: deactivated under the removal policy (not forwarded).
    active         boolean NOT NULL DEFAULT true,
    source_state   text NOT NULL DEFAULT 'granted'
                   CHECK (source_state IN ('granted', 'inactive', 'removed')),
    imported_at    timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (integration_id, key)
);
CREATE INDEX imported_products_tenant ON imported_products (tenant_id);
