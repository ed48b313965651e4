-- Rows a writer hands straight to its process's relay after committing them
-- (the hot paths: new sales, forward commands) carry a lease: until it ends,
-- no relay's sweep takes them, so the relay that was handed them publishes
-- them without reading them back and then deletes them by id. If that
-- process dies first, the lease lapses and any relay's sweep publishes them
-- (consumers dedupe by message id, as after any crash between confirm and
-- delete). Rows without a lease are the sweep's at once, as before.
ALTER TABLE outbox ADD COLUMN leased_until timestamptz;

-- The sweep's usual pass takes rows without a lease through this index, which
-- handed-off rows never enter: however many of them come and go (and leave
-- dead index entries behind until vacuum), the pass reads only its own rows.
-- Rows whose lease lapsed are looked for separately, seldom, along the
-- primary key.
CREATE INDEX outbox_unleased ON outbox (id) WHERE leased_until IS NULL;
