-- One query, one plan: the index path of rscapret_search and rscapret_search_by_tile is now a single statement
-- that orders by distance through the HNSW index and returns every column, instead of collecting tile ids first
-- and joining back for the columns in a second statement (a second plan, +0.12 ms planning, and twice the time
-- of a bbox query). Same signatures, argument checks, messages, settings and results as 0005/0006: the k rows
-- the index scan yields, ordered by (distance, tile_id); the exact search only when asked for (exact => true) or
-- when the index scan ends short of k rows.
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
        -- Iterative scan so that filtered queries keep scanning until k rows pass; the candidate list is
        -- rscapret.ef_search when set (session, role or database), else max(40, 2k) (README, "Search benchmark").
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        PERFORM set_config('hnsw.ef_search',
            greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                            greatest(40, 2 * k))))::text, true);
        -- The inner query is the index scan (ORDER BY distance LIMIT k, every column); the outer one orders those
        -- k rows by (distance, tile_id) and yields them only when there are k of them, so that a short scan
        -- returns nothing here and the exact search below answers alone.
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
                         ORDER BY c.embedding <=> query
                         LIMIT k) a) h
         WHERE h.n = k
         ORDER BY h.distance, h.tile_id;
        GET DIAGNOSTICS returned = ROW_COUNT;
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
        IF returned > 0 THEN RETURN; END IF;
    END IF;

    -- Exact: the "+ 0" keeps the planner off the HNSW index, so every filtered row is ranked.
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

-- Image-to-image: as before, the stored tile's vector and model, a search for k + 1 rows under the filters (checked
-- and set up as rscapret_search does, with its messages), the tile itself left out of those, then the first k by
-- (distance, tile_id); the index path in one statement here too rather than through rscapret_search.
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
    -- k < 1 as 0005 answered it, whose LIMIT k took effect before its search ran: no rows for 0, PostgreSQL's
    -- LIMIT error for a negative k.
    IF k = 0 THEN RETURN; END IF;
    IF k < 0 THEN RAISE EXCEPTION 'LIMIT must not be negative' USING ERRCODE = 'invalid_row_count_in_limit_clause'; END IF;
    -- k + 1 rows, so that k remain once the tile itself is left out; the checks and their wording are those
    -- rscapret_search applied to k + 1 when this function called it (0005).
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
        -- As in rscapret_search: the index scan's k + 1 rows, yielded only when there are k + 1 of them.
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
                         ORDER BY c.embedding <=> q
                         LIMIT k1) a) h
         WHERE h.n = k1 AND h.tile_id <> tile
         ORDER BY h.distance, h.tile_id
         LIMIT k;
        GET DIAGNOSTICS returned = ROW_COUNT;
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
        IF returned > 0 THEN RETURN; END IF;
    END IF;

    -- Exact (see rscapret_search); leaving the tile out before the limit is the same as the first k of k + 1
    -- without it.
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
