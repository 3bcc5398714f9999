-- One acquisition per place (issue 29, the map; history: migrations 0022, 0024): over several acquisitions of the
-- same ground, a search or a heat map may keep only the newest acquisition of each place, so the map shows one layer
-- of results, never stacked ones.
--
-- A tile is hidden when a tile of a newer acquisition — another completed scene of the same model that the same
-- scene and date filters let through — covers the tile's centre. Newer: the later acquired_at (a scene without one
-- is the oldest), the higher scene id on the same instant. This is the order the map's imagery layer draws scenes in
-- (CatalogStore.ScenesForMapAsync: oldest first, newer on top), so a hit lies on the imagery drawn over its place.
-- An "as of" date is acquired_before = the day after it: the newest acquisition on or before that day.
--
-- rscapret_search_newest: rows offset + 1 .. offset + k of that ranking (as rscapret_search_page pages: one search
-- of offset + k rows, the first offset skipped, so pages are exact), k + offset at most 1000; exclude_tile leaves one
-- tile out (a tile's look-alikes). rscapret_heatmap_newest: rscapret_heatmap's rows with the same rule.
-- The newer-acquisition test is a per-row subplan (OFFSET 0 keeps the planner from turning NOT EXISTS into an anti
-- join): as an anti join, the planner hashed the tiles on their model — one bucket, every tile against every tile
-- (28.6 s for a heat map of 21,600 tiles, six acquisitions of one ground); as a subplan each tile asks the footprint
-- index for the tiles over its centre (2.0 s, against 0.24 s for rscapret_heatmap without the test).

CREATE OR REPLACE FUNCTION rscapret_search_newest(
    query           vector(256),
    k               integer     DEFAULT 10,
    "offset"        integer     DEFAULT 0,
    area            geometry    DEFAULT NULL,
    near            geometry    DEFAULT NULL,
    radius_m        double precision DEFAULT NULL,
    acquired_after  timestamptz DEFAULT NULL,
    acquired_before timestamptz DEFAULT NULL,
    model           integer     DEFAULT NULL,
    scene           bigint      DEFAULT NULL,
    exclude_tile    bigint      DEFAULT NULL,
    exact           boolean     DEFAULT false)
RETURNS TABLE (tile_id bigint, scene_id bigint, scene_path text, grid_row integer, grid_col integer,
               px_x integer, px_y integer, px_width integer, px_height integer, footprint geometry,
               caption text, distance double precision, acquired_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    depth   integer;
    old_it  text := current_setting('hnsw.iterative_scan', true);
    old_ef  text := current_setting('hnsw.ef_search', true);
    returned bigint;
BEGIN
    IF query IS NULL THEN RAISE EXCEPTION 'rscapret_search_newest: query vector is null'; END IF;
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search_newest: k must be between 1 and 1000, got %', k; END IF;
    IF "offset" IS NULL OR "offset" < 0 THEN RAISE EXCEPTION 'rscapret_search_newest: offset must be 0 or more, got %', "offset"; END IF;
    IF k::bigint + "offset" > 1000 THEN
        RAISE EXCEPTION 'rscapret_search_newest: offset + k must be at most 1000 (the ranking is 1000 rows deep), got %', k::bigint + "offset";
    END IF;
    IF (near IS NULL) <> (radius_m IS NULL) THEN RAISE EXCEPTION 'rscapret_search_newest: near and radius_m go together'; END IF;
    IF radius_m IS NOT NULL AND (radius_m <= 0 OR radius_m > 20037508) THEN
        RAISE EXCEPTION 'rscapret_search_newest: radius_m must be in (0, 20037508], got %', radius_m; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    IF near IS NOT NULL AND ST_SRID(near) = 0 THEN near := ST_SetSRID(near, 4326); END IF;
    depth := k + "offset";

    IF NOT exact THEN
        -- As rscapret_search's filtered statement: 2 x depth halfvec candidates from the graph (the iterative scan
        -- goes on until that many pass the filters), ranked by full-precision distance; exact when fewer come back.
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        PERFORM set_config('hnsw.ef_search',
            greatest(depth, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                                greatest(40, 2 * depth))))::text, true);
        RETURN QUERY
        SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
               h.footprint, h.caption, h.distance, h.acquired_at
          FROM (SELECT a.*, count(*) OVER () AS n
                  FROM (SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y,
                               c.px_width, c.px_height, c.footprint, c.caption,
                               (c.embedding <=> query)::double precision AS distance, c.acquired_at
                          FROM tile_catalog c
                         WHERE (area IS NULL OR ST_Intersects(c.footprint, area))
                           AND (near IS NULL OR ST_DWithin(c.footprint::geography, near::geography, radius_m))
                           AND (acquired_after IS NULL OR c.acquired_at >= acquired_after)
                           AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
                           AND (model IS NULL OR c.model_id = model)
                           AND (scene IS NULL OR c.scene_id = scene)
                           AND (exclude_tile IS NULL OR c.tile_id <> exclude_tile)
                           AND NOT EXISTS (
                               SELECT 1 FROM tiles u JOIN scenes s ON s.id = u.scene_id
                                WHERE ST_Intersects(u.footprint, ST_Centroid(c.footprint))
                                  AND u.model_id = c.model_id AND s.status = 'done' AND s.id <> c.scene_id
                                  AND (coalesce(s.acquired_at, '-infinity'), s.id) > (coalesce(c.acquired_at, '-infinity'), c.scene_id)
                                  AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
                                  AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
                                  AND (scene IS NULL OR s.id = scene)
            OFFSET 0)
                         ORDER BY c.embedding::halfvec(256) <=> query::halfvec(256)
                         LIMIT 2 * depth) a) h
         WHERE h.n >= depth
         ORDER BY h.distance, h.tile_id
         LIMIT k OFFSET "offset";
        GET DIAGNOSTICS returned = ROW_COUNT;
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
        -- Fewer than depth candidates passed: the exact ranking answers (as rscapret_search does).
        IF returned > 0 THEN RETURN; END IF;
    END IF;

    -- Exact: full precision, and the "+ 0" keeps the planner off the HNSW index, so every filtered row is ranked.
    RETURN QUERY
    SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y, c.px_width, c.px_height,
           c.footprint, c.caption, (c.embedding <=> query)::double precision, c.acquired_at
      FROM tile_catalog c
     WHERE (area IS NULL OR ST_Intersects(c.footprint, area))
       AND (near IS NULL OR ST_DWithin(c.footprint::geography, near::geography, radius_m))
       AND (acquired_after IS NULL OR c.acquired_at >= acquired_after)
       AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
       AND (model IS NULL OR c.model_id = model)
       AND (scene IS NULL OR c.scene_id = scene)
       AND (exclude_tile IS NULL OR c.tile_id <> exclude_tile)
       AND NOT EXISTS (
           SELECT 1 FROM tiles u JOIN scenes s ON s.id = u.scene_id
            WHERE ST_Intersects(u.footprint, ST_Centroid(c.footprint))
              AND u.model_id = c.model_id AND s.status = 'done' AND s.id <> c.scene_id
              AND (coalesce(s.acquired_at, '-infinity'), s.id) > (coalesce(c.acquired_at, '-infinity'), c.scene_id)
              AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
              AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
              AND (scene IS NULL OR s.id = scene)
            OFFSET 0)
     ORDER BY (c.embedding <=> query) + 0, c.tile_id
     LIMIT k OFFSET "offset";
END
$$;
COMMENT ON FUNCTION rscapret_search_newest(vector, integer, integer, geometry, geometry, double precision, timestamptz, timestamptz, integer, bigint, bigint, boolean) IS
  'rows offset + 1 .. offset + k of a search that keeps one acquisition per place (the newest the filters let through): what the map page asks for';

CREATE OR REPLACE FUNCTION rscapret_heatmap_newest(
    query           vector(256),
    area            geometry    DEFAULT NULL,
    scene           bigint      DEFAULT NULL,
    model           integer     DEFAULT NULL,
    max_tiles       integer     DEFAULT 20000,
    acquired_before timestamptz DEFAULT NULL)
RETURNS TABLE (tile_id bigint, scene_id bigint, footprint geometry, score double precision)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF query IS NULL THEN RAISE EXCEPTION 'rscapret_heatmap_newest: query vector is null'; END IF;
    IF area IS NULL AND scene IS NULL THEN RAISE EXCEPTION 'rscapret_heatmap_newest: give an area or a scene'; END IF;
    IF max_tiles IS NULL OR max_tiles < 1 OR max_tiles > 200000 THEN
        RAISE EXCEPTION 'rscapret_heatmap_newest: max_tiles must be between 1 and 200000, got %', max_tiles; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    RETURN QUERY
    SELECT t.id, t.scene_id, t.footprint, (1 - (t.embedding <=> query))::double precision
      FROM tiles t
      JOIN scenes c ON c.id = t.scene_id AND c.status = 'done'
     WHERE t.footprint IS NOT NULL
       AND (area IS NULL OR ST_Intersects(t.footprint, area))
       AND (scene IS NULL OR t.scene_id = scene)
       AND (model IS NULL OR t.model_id = model)
       AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
       AND NOT EXISTS (
           SELECT 1 FROM tiles u JOIN scenes s ON s.id = u.scene_id
            WHERE ST_Intersects(u.footprint, ST_Centroid(t.footprint))
              AND u.model_id = t.model_id AND s.status = 'done' AND s.id <> c.id
              AND (coalesce(s.acquired_at, '-infinity'), s.id) > (coalesce(c.acquired_at, '-infinity'), c.id)
              AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
              AND (scene IS NULL OR s.id = scene)
            OFFSET 0)
     ORDER BY t.id
     LIMIT max_tiles + 1;
END
$$;
COMMENT ON FUNCTION rscapret_heatmap_newest(vector, geometry, bigint, integer, integer, timestamptz) IS
  'rscapret_heatmap with one acquisition per place: the newest acquired before acquired_before (all when null)';
