-- The web console (issue 18): operator accounts scoped to some tenants, and
-- browser sessions. Tokens and session ids are stored as SHA-256 only.

-- An operator signs in with its own token. `tenant_ids` NULL sees every
-- tenant; otherwise the console shows nothing of the tenants not listed.
-- (`ADMIN_TOKEN` is the unscoped operator that needs no row.)
CREATE TABLE operators (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    token_hash  bytea NOT NULL UNIQUE,
    tenant_ids  uuid[],
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- A signed-in browser. Exactly one of: an operator (a row, or the admin
-- token: operator_id NULL and kind 'operator'), or a tenant user's token.
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('operator', 'tenant')),
    operator_id uuid REFERENCES operators (id) ON DELETE CASCADE,
    tenant_id   uuid REFERENCES tenants (id) ON DELETE CASCADE,
    token_id    uuid REFERENCES api_tokens (id) ON DELETE CASCADE,
    -- the form token every state-changing request must echo
    csrf_token  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    CHECK ((kind = 'tenant') = (tenant_id IS NOT NULL AND token_id IS NOT NULL)),
    CHECK (kind = 'operator' OR operator_id IS NULL)
);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

-- Dead-letter actions taken on a console page.
ALTER TABLE dead_letter_actions DROP CONSTRAINT dead_letter_actions_via_check;
ALTER TABLE dead_letter_actions ADD CONSTRAINT dead_letter_actions_via_check
    CHECK (via IN ('api', 'cli', 'console'));
