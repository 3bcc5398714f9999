-- Similarity heat map: the cosine similarity of every tile of an area (or of one scene) to a query vector, for the
-- map page to colour. Unlike rscapret_search, nothing is ranked: every tile in the area counts, so the answer is
-- bounded instead — at most max_tiles rows plus one, which tells the caller the area held more than it may draw.
--
--   rscapret_heatmap(query, area => geometry, scene => id, model => id, max_tiles => 20000)
--
-- Rows: tile, scene, footprint (EPSG:4326) and score = 1 - cosine distance, in tile order; tiles of completed scenes
-- with a footprint only. An area (EPSG:4326, or any SRID, transformed) or a scene is required. History: migration 0015.
CREATE OR REPLACE FUNCTION rscapret_heatmap(
    query     vector(256),
    area      geometry DEFAULT NULL,
    scene     bigint   DEFAULT NULL,
    model     integer  DEFAULT NULL,
    max_tiles integer  DEFAULT 20000)
RETURNS TABLE (tile_id bigint, scene_id bigint, footprint geometry, score double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF query IS NULL THEN RAISE EXCEPTION 'rscapret_heatmap: query vector is null'; END IF;
    IF area IS NULL AND scene IS NULL THEN RAISE EXCEPTION 'rscapret_heatmap: give an area or a scene'; END IF;
    IF max_tiles IS NULL OR max_tiles < 1 OR max_tiles > 200000 THEN
        RAISE EXCEPTION 'rscapret_heatmap: max_tiles must be between 1 and 200000, got %', max_tiles; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    RETURN QUERY
    SELECT t.id, t.scene_id, t.footprint, (1 - (t.embedding <=> query))::double precision
      FROM tiles t
      JOIN scenes s ON s.id = t.scene_id AND s.status = 'done'
     WHERE t.footprint IS NOT NULL
       AND (area IS NULL OR ST_Intersects(t.footprint, area))
       AND (scene IS NULL OR t.scene_id = scene)
       AND (model IS NULL OR t.model_id = model)
     ORDER BY t.id
     LIMIT max_tiles + 1;
END
$$;
