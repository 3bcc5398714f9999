-- Search for analysts (psql or any SQL client) and for the application, one definition for both (history: migrations
-- 0003, 0005, 0006, 0013, 0016, 0017).
--
-- rscapret_search: the k nearest tiles of completed scenes to a query vector by cosine distance, with optional filters:
--   area            any geometry (SRID 4326, or 0 taken as 4326): tiles whose footprint intersects it
--   near + radius_m a point (4326) and a distance in metres: tiles within that distance (geodesic)
--   acquired_after / acquired_before, model, scene
--   exact           true: no ANN index (exhaustive, for validation)
-- The index path is one statement: the per-model halfvec HNSW graph yields 2k candidates in halfvec order (pgvector 0.8
-- iterative scan, strict order, so filters keep it going until 2k pass), each with its full-precision distance; the k
-- nearest of those by (distance, tile_id) are returned when at least k candidates came back, otherwise an exact search
-- over the filtered rows answers, so k rows come back whenever k exist. The common case (a query vector and its model,
-- no other filter) has a statement of its own, planned once per session (a generic plan, its partition chosen at
-- executor start).

CREATE OR REPLACE FUNCTION rscapret_search(
    query           vector(256),
    k               integer     DEFAULT 10,
    area            geometry    DEFAULT NULL,
    near            geometry    DEFAULT NULL,
    radius_m        double precision DEFAULT NULL,
    acquired_after  timestamptz DEFAULT NULL,
    acquired_before timestamptz DEFAULT NULL,
    model           integer     DEFAULT NULL,
    scene           bigint      DEFAULT NULL,
    exact           boolean     DEFAULT false)
RETURNS TABLE (tile_id bigint, scene_id bigint, scene_path text, grid_row integer, grid_col integer,
               px_x integer, px_y integer, px_width integer, px_height integer, footprint geometry,
               caption text, distance double precision, acquired_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    old_it  text := current_setting('hnsw.iterative_scan', true);
    old_ef  text := current_setting('hnsw.ef_search', true);
    old_pcm text := current_setting('plan_cache_mode');
    old_jit   text := current_setting('jit');
    old_sort  text := current_setting('enable_sort');
    old_hash  text := current_setting('enable_hashjoin');
    old_merge text := current_setting('enable_mergejoin');
    returned bigint;
BEGIN
    IF query IS NULL THEN RAISE EXCEPTION 'rscapret_search: query vector is null'; END IF;
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search: k must be between 1 and 1000, got %', k; END IF;
    IF (near IS NULL) <> (radius_m IS NULL) THEN RAISE EXCEPTION 'rscapret_search: near and radius_m go together'; END IF;
    IF radius_m IS NOT NULL AND (radius_m <= 0 OR radius_m > 20037508) THEN
        RAISE EXCEPTION 'rscapret_search: radius_m must be in (0, 20037508], got %', radius_m; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    IF near IS NOT NULL AND ST_SRID(near) = 0 THEN near := ST_SetSRID(near, 4326); END IF;

    IF NOT exact THEN
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        PERFORM set_config('hnsw.ef_search',
            greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                            greatest(40, 2 * k))))::text, true);
        IF model IS NOT NULL AND area IS NULL AND near IS NULL AND acquired_after IS NULL AND acquired_before IS NULL
           AND scene IS NULL THEN
            -- The common case: one model's vectors, no other filter. Planned once per session (a generic plan; the
            -- model's partition is chosen when the plan starts), from tiles and scenes without the view's join with
            -- models, which the rows' foreign key makes redundant.
            PERFORM set_config('plan_cache_mode', 'force_generic_plan', true);
            -- A generic plan does not know k, so the planner costs it as if 10 % of the rows were wanted, and a
            -- small partition would be sorted whole; the graph's ordered scan, each row's scene by its key, is the
            -- plan wanted at any size: sorts and hash or merge joins are priced out while the plan is made (and JIT
            -- is off, which those prices would otherwise switch on: 100 ms of compiling per search).
            PERFORM set_config('jit', 'off', true);
            PERFORM set_config('enable_sort', 'off', true);
            PERFORM set_config('enable_hashjoin', 'off', true);
            PERFORM set_config('enable_mergejoin', 'off', true);
            RETURN QUERY
            SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
                   h.footprint, h.caption, h.distance, h.acquired_at
              FROM (SELECT a.*, count(*) OVER () AS n
                      FROM (SELECT t.id AS tile_id, t.scene_id, s.path AS scene_path, t.grid_row, t.grid_col, t.px_x,
                                   t.px_y, t.px_width, t.px_height, t.footprint, t.caption,
                                   (t.embedding <=> query)::double precision AS distance, s.acquired_at
                              FROM tiles t
                              JOIN scenes s ON s.id = t.scene_id
                             WHERE t.model_id = model AND s.status = 'done'
                             ORDER BY t.embedding::halfvec(256) <=> query::halfvec(256)
                             LIMIT 2 * k) a) h
             WHERE h.n >= k
             ORDER BY h.distance, h.tile_id
             LIMIT k;
            GET DIAGNOSTICS returned = ROW_COUNT;
            PERFORM set_config('plan_cache_mode', old_pcm, true);
            PERFORM set_config('jit', old_jit, true);
            PERFORM set_config('enable_sort', old_sort, true);
            PERFORM set_config('enable_hashjoin', old_hash, true);
            PERFORM set_config('enable_mergejoin', old_merge, true);
        ELSE
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
                             ORDER BY c.embedding::halfvec(256) <=> query::halfvec(256)
                             LIMIT 2 * k) a) h
             WHERE h.n >= k
             ORDER BY h.distance, h.tile_id
             LIMIT k;
            GET DIAGNOSTICS returned = ROW_COUNT;
        END IF;
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
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
     ORDER BY (c.embedding <=> query) + 0, c.tile_id
     LIMIT k;
END
$$;
COMMENT ON FUNCTION rscapret_search IS
  'k nearest tiles by cosine distance to a 256-d query vector, with optional area/near+radius/time/model/scene filters; exact=true skips the ANN index.';

-- Image-to-image search: tiles that look like a given tile (its stored image vector, same model), with the filters of
-- rscapret_search, ranked the same way; the query tile itself is left out of the results.
CREATE OR REPLACE FUNCTION rscapret_search_by_tile(
    tile            bigint,
    k               integer     DEFAULT 10,
    area            geometry    DEFAULT NULL,
    near            geometry    DEFAULT NULL,
    radius_m        double precision DEFAULT NULL,
    acquired_after  timestamptz DEFAULT NULL,
    acquired_before timestamptz DEFAULT NULL,
    scene           bigint      DEFAULT NULL,
    exact           boolean     DEFAULT false)
RETURNS TABLE (tile_id bigint, scene_id bigint, scene_path text, grid_row integer, grid_col integer,
               px_x integer, px_y integer, px_width integer, px_height integer, footprint geometry,
               caption text, distance double precision, acquired_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q       vector(256);
    m       integer;
    k1      integer;
    old_it  text := current_setting('hnsw.iterative_scan', true);
    old_ef  text := current_setting('hnsw.ef_search', true);
    returned bigint;
BEGIN
    SELECT c.embedding, c.model_id INTO q, m FROM tile_catalog c WHERE c.tile_id = tile;
    IF q IS NULL THEN
        RAISE EXCEPTION 'no tile % in a completed scene', tile USING ERRCODE = 'no_data_found';
    END IF;
    IF k = 0 THEN RETURN; END IF;
    IF k < 0 THEN RAISE EXCEPTION 'LIMIT must not be negative' USING ERRCODE = 'invalid_row_count_in_limit_clause'; END IF;
    k1 := k + 1;
    IF k1 IS NULL OR k1 > 1000 THEN RAISE EXCEPTION 'rscapret_search: k must be between 1 and 1000, got %', k1; END IF;
    IF (near IS NULL) <> (radius_m IS NULL) THEN RAISE EXCEPTION 'rscapret_search: near and radius_m go together'; END IF;
    IF radius_m IS NOT NULL AND (radius_m <= 0 OR radius_m > 20037508) THEN
        RAISE EXCEPTION 'rscapret_search: radius_m must be in (0, 20037508], got %', radius_m; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    IF near IS NOT NULL AND ST_SRID(near) = 0 THEN near := ST_SetSRID(near, 4326); END IF;

    IF NOT exact THEN
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        PERFORM set_config('hnsw.ef_search',
            greatest(k1, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                             greatest(40, 2 * k1))))::text, true);
        -- 2(k + 1) candidates, at least k + 1 of them, the tile itself left out, the first k by exact distance.
        RETURN QUERY
        SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
               h.footprint, h.caption, h.distance, h.acquired_at
          FROM (SELECT a.*, count(*) OVER () AS n
                  FROM (SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y,
                               c.px_width, c.px_height, c.footprint, c.caption,
                               (c.embedding <=> q)::double precision AS distance, c.acquired_at
                          FROM tile_catalog c
                         WHERE (area IS NULL OR ST_Intersects(c.footprint, area))
                           AND (near IS NULL OR ST_DWithin(c.footprint::geography, near::geography, radius_m))
                           AND (acquired_after IS NULL OR c.acquired_at >= acquired_after)
                           AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
                           AND c.model_id = m
                           AND (scene IS NULL OR c.scene_id = scene)
                         ORDER BY c.embedding::halfvec(256) <=> q::halfvec(256)
                         LIMIT 2 * k1) a) h
         WHERE h.n >= k1 AND h.tile_id <> tile
         ORDER BY h.distance, h.tile_id
         LIMIT k;
        GET DIAGNOSTICS returned = ROW_COUNT;
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
        IF returned > 0 THEN RETURN; END IF;
    END IF;

    RETURN QUERY
    SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y, c.px_width, c.px_height,
           c.footprint, c.caption, (c.embedding <=> q)::double precision, c.acquired_at
      FROM tile_catalog c
     WHERE (area IS NULL OR ST_Intersects(c.footprint, area))
       AND (near IS NULL OR ST_DWithin(c.footprint::geography, near::geography, radius_m))
       AND (acquired_after IS NULL OR c.acquired_at >= acquired_after)
       AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
       AND c.model_id = m
       AND (scene IS NULL OR c.scene_id = scene)
       AND c.tile_id <> tile
     ORDER BY (c.embedding <=> q) + 0, c.tile_id
     LIMIT k;
END
$$;
COMMENT ON FUNCTION rscapret_search_by_tile IS
  'k tiles nearest to a stored tile (its image vector and model), with the filters of rscapret_search; the tile itself is excluded.';
