-- Per-tenant rate limits that hold across ingest replicas. Each tenant has
-- one token bucket here; an ingest process takes tokens from it in small
-- chunks (a few tens of milliseconds of the tenant's rate) and spends them
-- locally, so the database sees a handful of calls per second per busy
-- tenant instead of one per request, and N replicas together never allow
-- more than the one bucket does.
CREATE TABLE rate_buckets (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    tokens      double precision NOT NULL,
    refilled_at timestamptz NOT NULL
);

-- Refills the tenant's bucket to now (at most `burst`) and takes at least
-- `need` and up to `want` tokens, or nothing when `need` is not there.
-- Returns what it took and what the bucket held before taking. The rate and
-- burst come from the caller (every replica runs with the same settings);
-- a first call creates a full bucket.
CREATE FUNCTION take_rate_tokens(
    p_tenant uuid,
    p_need double precision,
    p_want double precision,
    p_rate double precision,
    p_burst double precision,
    OUT granted double precision,
    OUT available double precision
) LANGUAGE plpgsql AS $$
DECLARE
    held double precision;
    at timestamptz;
    now_ts timestamptz := clock_timestamp();
BEGIN
    INSERT INTO rate_buckets (tenant_id, tokens, refilled_at)
    VALUES (p_tenant, p_burst, now_ts)
    ON CONFLICT (tenant_id) DO NOTHING;
    SELECT tokens, refilled_at INTO held, at
    FROM rate_buckets WHERE tenant_id = p_tenant FOR UPDATE;
    available := least(p_burst, held + greatest(0, extract(epoch FROM now_ts - at)) * p_rate);
    IF available >= p_need THEN
        granted := least(available, greatest(p_need, p_want));
    ELSE
        granted := 0;
    END IF;
    UPDATE rate_buckets SET tokens = available - granted, refilled_at = now_ts
    WHERE tenant_id = p_tenant;
END $$;

-- Revoking a token tells every ingest process at once (LISTEN
-- token_revoked; the payload is the token's SHA-256 in hex), so a revoked
-- token stops working everywhere although active tokens are cached.
CREATE FUNCTION notify_token_revoked() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('token_revoked', encode(NEW.token_hash, 'hex'));
    RETURN NEW;
END $$;

CREATE TRIGGER api_tokens_revoked
    AFTER UPDATE OF revoked_at ON api_tokens
    FOR EACH ROW WHEN (NEW.revoked_at IS NOT NULL AND OLD.revoked_at IS NULL)
    EXECUTE FUNCTION notify_token_revoked();
