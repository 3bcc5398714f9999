-- Fencing for scene leases: each claim gets a fresh token, and only the holder of the current token may write the
-- scene's tiles, mark it done or failed. A worker that stalled past its lease and was taken over then rolls back
-- instead of committing a second copy (or flipping the other worker's finished scene to 'failed').
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS claim_token uuid;
