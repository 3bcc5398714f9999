-- Who holds a scene being ingested: the claiming process's host name, a key of its process namespace (the boot and
-- PID namespace it runs in), its PID and its start time (clock ticks since boot). A run on the same host and in the
-- same namespace can then tell at once that the holder is gone (killed, crashed, its machine rebooted) and take the
-- scene over, instead of waiting out the dead run's lease. Rows claimed before this migration have none of these and
-- lapse with their lease as before.
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS claim_host          text;
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS claim_namespace     text;
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS claim_pid           integer;
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS claim_process_start bigint;
