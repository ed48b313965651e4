-- The provider's partners (issue 17): an organization per reseller, and what
-- it is granted of the catalogue (services/console, routes/organizations.rs).
--
-- A grant names a product or a flow by key. Revoking keeps the row with
-- `revoked_at`, so what was granted when stays on record; granting again
-- clears it.
CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, name)
);

CREATE TABLE grants (
    organization_id uuid NOT NULL REFERENCES organizations (id),
    kind            text NOT NULL CHECK (kind IN ('product', 'flow')),
    key             text NOT NULL,
    granted_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,
    PRIMARY KEY (organization_id, kind, key)
);
