-- Zero-shot land-use classes of a scene: every tile of the scene scored against a set of prompt vectors (the [RET]
-- vectors of "dense residential area", "river", ... embedded by the scene's model), by cosine similarity.
--
--   rscapret_scene_classes(scene, prompts)   prompts: a non-empty array of vector(256), one per label, in label order
--
-- One row per stored tile of the scene, in grid order: the best label (0-based index into prompts), its similarity,
-- and the runner-up's similarity (margin = score - runner_up; null with a single prompt). Ties go to the lower index.
-- Bounded work: one pass over the scene's tiles, each against every prompt (at most 254, the GeoTIFF's class range).
-- History: migration 0014.
CREATE OR REPLACE FUNCTION rscapret_scene_classes(scene bigint, prompts vector(256)[])
RETURNS TABLE (tile_id bigint, grid_row integer, grid_col integer, footprint geometry, footprint_native geometry,
               class_index integer, score double precision, runner_up double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF scene IS NULL THEN RAISE EXCEPTION 'rscapret_scene_classes: scene is null'; END IF;
    IF prompts IS NULL OR cardinality(prompts) = 0 THEN RAISE EXCEPTION 'rscapret_scene_classes: no prompts'; END IF;
    IF cardinality(prompts) > 254 THEN
        RAISE EXCEPTION 'rscapret_scene_classes: at most 254 prompts, got %', cardinality(prompts); END IF;
    IF array_position(prompts, NULL) IS NOT NULL THEN RAISE EXCEPTION 'rscapret_scene_classes: a prompt vector is null'; END IF;
    RETURN QUERY
    SELECT t.id, t.grid_row, t.grid_col, t.footprint, t.footprint_native,
           (r.ords[1] - 1)::integer, 1 - r.dists[1], 1 - r.dists[2]
      FROM tiles t
     CROSS JOIN LATERAL (
           SELECT array_agg(p.ord ORDER BY t.embedding <=> p.v, p.ord) AS ords,
                  array_agg(t.embedding <=> p.v ORDER BY t.embedding <=> p.v, p.ord) AS dists
             FROM unnest(prompts) WITH ORDINALITY AS p(v, ord)) r
     WHERE t.scene_id = scene
     ORDER BY t.grid_row, t.grid_col;
END
$$;
