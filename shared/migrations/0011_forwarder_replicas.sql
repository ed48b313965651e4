-- Per-target concurrency and circuit breakers that hold across forwarder
-- replicas (services/forwarder/src/membership.rs, breaker_sync.rs).
--
-- Each forwarder process keeps a row here while it runs and heartbeats it;
-- a row older than REPLICA_TTL is not live and is deleted by the next
-- heartbeat of any replica. `held` is the most requests this replica may
-- have in flight to any one target: a replica raises it (in a heartbeat
-- serialised by an advisory lock) only while the sum over all rows stays
-- within TARGET_CONCURRENCY, and lowers it only once its requests above the
-- new share have finished, so the replicas together never exceed the limit.
CREATE TABLE forwarder_replicas (
    id           uuid PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL,
    held         integer NOT NULL CHECK (held >= 0),
    started_at   timestamptz NOT NULL DEFAULT now()
);

-- The shared state of a target's circuit breaker; no row means closed.
-- 'open': nothing is sent until `until`, then one replica may claim the
-- half-open probes. 'probing': `probe_owner` sends them; its claim lapses
-- at `until` unless renewed, so a replica that dies mid-round is replaced.
CREATE TABLE target_breakers (
    target_key  text PRIMARY KEY,
    state       text NOT NULL CHECK (state IN ('open', 'probing')),
    until       timestamptz NOT NULL,
    probe_owner uuid,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'probing') = (probe_owner IS NOT NULL))
);
