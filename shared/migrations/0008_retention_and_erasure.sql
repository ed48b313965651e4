-- Retention (the status-poller removes settled deliveries, old decisions and
-- status history, and clears old response excerpts) and erasure of a
-- customer's personal data (ingest). Sales themselves are kept: they are the
-- books, and their (tenant, external id) is the sale's idempotency key.

-- Integrations whose forward delivery of this sale was settled and then
-- removed by retention. A forward delivery's (tenant, dedupe_key) row is
-- what stops condition-filter from sending a sale to an integration twice;
-- once the row is gone this array says the same, so a status change of a
-- year-old sale does not send it again. Written only by retention (off the
-- hot path), one pass before the delivery is removed, so a condition-filter
-- statement already under way when the mark lands cannot miss both.
-- NULL (not '{}') until then: a new sale stores nothing for it, and adding
-- the column rewrites nothing.
ALTER TABLE sales ADD COLUMN settled_forwards uuid[];

-- When the customer's personal data was erased from this sale (NULL: never).
ALTER TABLE sales ADD COLUMN personal_data_erased_at timestamptz;

-- Every erasure: who asked, when, how the sales were found and which ones —
-- never the personal data itself.
CREATE TABLE personal_data_erasures (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    -- 'email', 'vat_number', 'external_ids' (comma-joined when several)
    matched_by      text NOT NULL,
    sale_ids        uuid[] NOT NULL,
    -- the tenant API token that asked; NULL when an operator did
    actor_token_id  uuid,
    via             text NOT NULL CHECK (via IN ('api', 'admin')),
    at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX personal_data_erasures_tenant ON personal_data_erasures (tenant_id, at DESC);

-- Where retention's windowed walks over the append-only tables (attempts,
-- decisions, status history; ids grow with time) have got to, so a pass does
-- not re-read rows it already dealt with.
CREATE TABLE retention_cursors (
    job             text PRIMARY KEY,
    after_id        bigint NOT NULL DEFAULT 0
);
