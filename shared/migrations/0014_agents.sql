-- Agent users (issue 17): a user of the provider (B) that exists only for
-- one partner organization's integration. Its token is integration-only by
-- construction; rotating revokes the old token and issues a new one, so at
-- most one token of an agent is active.
CREATE TABLE agents (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (organization_id, name)
);
CREATE INDEX agents_tenant ON agents (tenant_id);

ALTER TABLE api_tokens
    ADD COLUMN agent_id uuid REFERENCES agents (id),
    ADD CONSTRAINT agent_tokens_are_integration_only
        CHECK (agent_id IS NULL OR integration_only);
CREATE UNIQUE INDEX api_tokens_one_active_per_agent
    ON api_tokens (agent_id) WHERE agent_id IS NOT NULL AND revoked_at IS NULL;

-- An order an agent placed records the version of each product it was
-- checked against ({"product key": version}), so the sale keeps the
-- version it was made with whatever the catalogue does later.
ALTER TABLE sales ADD COLUMN catalogue_versions jsonb;
