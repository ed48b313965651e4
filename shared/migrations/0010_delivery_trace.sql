-- The W3C traceparent of the sale's trace at the moment its delivery was
-- planned (condition-filter copies it from the forward command's headers).
-- The status-poller continues that trace when it finds the target's status
-- change, so one trace holds a sale from its POST to the status carried
-- back. Written once on insert and never indexed: the forwarder's state
-- change stays a HOT update (migration 0005).
ALTER TABLE deliveries ADD COLUMN traceparent text;
