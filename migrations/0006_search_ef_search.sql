-- The HNSW candidate list of index searches becomes a setting: rscapret.ef_search, per session, role or database
-- (e.g. ALTER DATABASE ... SET rscapret.ef_search = 200); without it, max(40, 2k) as before. With the denser
-- graph of migration 0007, 40 already gives recall@10 0.99 at 1M tiles (README, "Search benchmark").
-- Same signature and results as 0003 otherwise.
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
    ids     bigint[];
    old_it  text := current_setting('hnsw.iterative_scan', true);
    old_ef  text := current_setting('hnsw.ef_search', true);
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
        -- The candidate list of the index scan: rscapret.ef_search when the session (or the role/database via
        -- ALTER ... SET) gives one, else max(40, 2k). Measured trade-off: README, "Search benchmark".
        PERFORM set_config('hnsw.ef_search',
            greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                            greatest(40, 2 * k))))::text, true);
        ids := ARRAY(
            SELECT c.tile_id FROM tile_catalog c
             WHERE (area IS NULL OR ST_Intersects(c.footprint, area))
               AND (near IS NULL OR ST_DWithin(c.footprint::geography, near::geography, radius_m))
               AND (acquired_after IS NULL OR c.acquired_at >= acquired_after)
               AND (acquired_before IS NULL OR c.acquired_at < acquired_before)
               AND (model IS NULL OR c.model_id = model)
               AND (scene IS NULL OR c.scene_id = scene)
             ORDER BY c.embedding <=> query
             LIMIT k);
        PERFORM set_config('hnsw.iterative_scan', coalesce(old_it, 'off'), true);
        PERFORM set_config('hnsw.ef_search', coalesce(old_ef, '40'), true);
        IF cardinality(ids) = k THEN
            RETURN QUERY
            SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y, c.px_width, c.px_height,
                   c.footprint, c.caption, (c.embedding <=> query)::double precision, c.acquired_at
              FROM tile_catalog c WHERE c.tile_id = ANY (ids)
             ORDER BY c.embedding <=> query, c.tile_id;
            RETURN;
        END IF;
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

