-- Where a scene's acquired_at came from: 'metadata' (the raster's date tags), 'stac' (a STAC item beside the file) or
-- 'filename' (a date in the file name); NULL when no time was found. stac_collection is the STAC item's collection id.
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS acquired_source text
    CHECK (acquired_source IN ('metadata', 'stac', 'filename'));
ALTER TABLE scenes ADD COLUMN IF NOT EXISTS stac_collection text;
