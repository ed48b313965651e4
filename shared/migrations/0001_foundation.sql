-- salesync foundation schema: tenants and their tokens, integrations, sales with
-- status history, forwarding decisions, deliveries with every attempt, and the
-- transactional outbox that carries DB changes to RabbitMQ.

CREATE TABLE tenants (
    id                  uuid PRIMARY KEY,
    name                text NOT NULL UNIQUE,
    -- where the tenant wants to hear about status changes of its own sales
    webhook_url         text,
    webhook_secret_enc  bytea,
    created_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                text NOT NULL,
    -- SHA-256 of the token; the token itself is shown once and never stored
    token_hash          bytea NOT NULL UNIQUE,
    -- first characters, so a person can tell tokens apart in a list
    token_prefix        text NOT NULL,
    integration_only    boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_used_at        timestamptz,
    revoked_at          timestamptz
);
CREATE INDEX api_tokens_tenant ON api_tokens(tenant_id);

CREATE TABLE integrations (
    id                      uuid PRIMARY KEY,
    tenant_id               uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name                    text NOT NULL,
    target_kind             text NOT NULL CHECK (target_kind IN ('salesync', 'webhook')),
    target_url              text NOT NULL,
    -- encrypted JSON: {"bearer_token": "..."}; never returned by the API
    credentials_enc         bytea,
    -- encrypted JSON array of Standard Webhooks secrets ("whsec_..."), newest first
    signing_secrets_enc     bytea NOT NULL,
    enabled                 boolean NOT NULL DEFAULT true,
    mode                    text NOT NULL DEFAULT 'automatic' CHECK (mode IN ('automatic', 'manual')),
    -- statuses that trigger automatic forwarding; empty = every status
    trigger_statuses        text[] NOT NULL DEFAULT '{}',
    conditions              jsonb NOT NULL DEFAULT '{}',
    mapping                 jsonb NOT NULL DEFAULT '{}',
    send_opt_in             boolean NOT NULL DEFAULT false,
    poll_status             boolean NOT NULL DEFAULT false,
    status_url              text,
    -- target status -> source status; unmapped target statuses are not synchronised
    status_map              jsonb NOT NULL DEFAULT '{}',
    final_statuses          text[] NOT NULL DEFAULT '{}',
    removed_product_policy  text NOT NULL DEFAULT 'nothing' CHECK (removed_product_policy IN ('nothing', 'deactivate', 'delete')),
    last_synced_at          timestamptz,
    deleted_at              timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integrations_tenant ON integrations(tenant_id) WHERE deleted_at IS NULL;

CREATE TABLE sales (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    external_id     text NOT NULL,
    payload_hash    bytea NOT NULL,
    sale            jsonb NOT NULL,
    status          text NOT NULL,
    currency        text NOT NULL,
    gross           bigint NOT NULL,
    occurred_at     timestamptz NOT NULL,
    business_date   date NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, external_id)
);

CREATE TABLE sale_status_history (
    id              bigserial PRIMARY KEY,
    sale_id         uuid NOT NULL REFERENCES sales(id) ON DELETE CASCADE,
    status          text NOT NULL,
    -- 'source' (the POS/webshop) or 'integration' (carried back from a target)
    origin          text NOT NULL CHECK (origin IN ('source', 'integration')),
    integration_id  uuid,
    target_status   text,
    -- makes a redelivered status event a no-op
    dedupe_key      text NOT NULL,
    note            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (sale_id, dedupe_key)
);

CREATE TABLE sale_decisions (
    id              bigserial PRIMARY KEY,
    sale_id         uuid NOT NULL REFERENCES sales(id) ON DELETE CASCADE,
    integration_id  uuid NOT NULL,
    event_id        uuid NOT NULL,
    trigger         text NOT NULL,
    status          text NOT NULL,
    forwarded       boolean NOT NULL,
    reason          text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_id, integration_id)
);
CREATE INDEX sale_decisions_sale ON sale_decisions(sale_id);

CREATE TABLE deliveries (
    id                  uuid PRIMARY KEY,
    tenant_id           uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    sale_id             uuid NOT NULL REFERENCES sales(id) ON DELETE CASCADE,
    -- NULL for status webhooks to the sale's own tenant
    integration_id      uuid REFERENCES integrations(id),
    purpose             text NOT NULL CHECK (purpose IN ('forward', 'status_webhook')),
    -- one delivery per (sale, integration) or per status change for webhooks
    dedupe_key          text NOT NULL,
    target_url          text NOT NULL,
    -- the id the target sees (Idempotency-Key / webhook-id) and can be asked about
    target_ref          text NOT NULL,
    state               text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'retrying', 'delivered', 'dead')),
    attempts            integer NOT NULL DEFAULT 0,
    last_error          text,
    dead_reason         text,
    delivered_at        timestamptz,
    target_status       text,
    target_status_final boolean NOT NULL DEFAULT false,
    poll_after          timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, dedupe_key)
);
CREATE INDEX deliveries_sale ON deliveries(sale_id);
CREATE INDEX deliveries_to_poll ON deliveries(poll_after)
    WHERE state = 'delivered' AND NOT target_status_final AND purpose = 'forward';

CREATE TABLE delivery_attempts (
    id              bigserial PRIMARY KEY,
    delivery_id     uuid NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt         integer NOT NULL,
    started_at      timestamptz NOT NULL,
    duration_ms     integer NOT NULL,
    status_code     integer,
    error           text,
    outcome         text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'dead')),
    response_excerpt text
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id);

-- Transactional outbox: a row is written in the same transaction as the state
-- change it announces, and deleted only after RabbitMQ confirmed the publish.
CREATE TABLE outbox (
    id              bigserial PRIMARY KEY,
    message_id      uuid NOT NULL,
    routing_key     text NOT NULL,
    message_type    text NOT NULL,
    headers         jsonb NOT NULL DEFAULT '{}',
    body            bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
