-- Each claim records when its own lease lapses (now() + the holder's lease, pushed on by every renewal), so a
-- scene is taken over when its holder's lease runs out, whatever lease the process trying to take it uses; a
-- released claim (cancelled, failed) has none. Rows claimed before this migration fall back to updated_at.
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS lease_expires_at timestamptz;
