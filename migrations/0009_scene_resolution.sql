-- The resolution a scene's tiles were made at, and a warning when it lies far outside the model's training range
-- (captions and search results on such tiles are unreliable).
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS tile_gsd double precision;
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS warning text;
