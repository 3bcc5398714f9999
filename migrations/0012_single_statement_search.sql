-- One query, one plan (issue #17, item 1). Until now rscapret_search ran two queries through tile_catalog (ids by
-- the index, then the rows by id) and rscapret_search_by_tile called it as a nested function. Now each answers
-- with one statement over tiles joined to scenes: the HNSW scan returns every column for the k rows, and the exact
-- search sits in the same statement behind a one-time filter, so it runs only when the scan came back short of k.
-- The models join of the view is dropped: tiles.model_id is a foreign key, so it never removed a row.
-- Iterative scans run in relaxed order (pgvector >= 0.8) with the k rows re-sorted by (distance, tile_id), the
-- order the previous definition returned. Signatures and result columns are those of 0003/0005/0006.
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
LANGUAGE plpgsql STABLE
-- Function-level settings end with the call, so the caller's session keeps its own values; ef_search is
-- replaced below by the computed candidate list.
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = 40
AS $$
BEGIN
    IF query IS NULL THEN RAISE EXCEPTION 'rscapret_search: query vector is null'; END IF;
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search: k must be between 1 and 1000, got %', k; END IF;
    IF (near IS NULL) <> (radius_m IS NULL) THEN RAISE EXCEPTION 'rscapret_search: near and radius_m go together'; END IF;
    IF radius_m IS NOT NULL AND (radius_m <= 0 OR radius_m > 20037508) THEN
        RAISE EXCEPTION 'rscapret_search: radius_m must be in (0, 20037508], got %', radius_m; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    IF near IS NOT NULL AND ST_SRID(near) = 0 THEN near := ST_SetSRID(near, 4326); END IF;

    IF exact THEN
        -- The "+ 0" keeps the planner off the HNSW index, so every filtered row is ranked.
        RETURN QUERY
        SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
               t.footprint, t.caption, (t.embedding <=> query)::double precision, s.acquired_at
          FROM tiles t JOIN scenes s ON s.id = t.scene_id
         WHERE s.status = 'done'
           AND (area IS NULL OR ST_Intersects(t.footprint, area))
           AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
           AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
           AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
           AND (model IS NULL OR t.model_id = model)
           AND (scene IS NULL OR t.scene_id = scene)
         ORDER BY (t.embedding <=> query) + 0, t.id
         LIMIT k;
        RETURN;
    END IF;

    -- Candidate list: rscapret.ef_search when set (session, role or database), else max(40, 2k), as in 0006.
    PERFORM set_config('hnsw.ef_search',
        greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                        greatest(40, 2 * k))))::text, true);

    RETURN QUERY
    WITH ann AS MATERIALIZED (
        SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
               t.footprint, t.caption, (t.embedding <=> query)::double precision AS d, s.acquired_at
          FROM tiles t JOIN scenes s ON s.id = t.scene_id
         WHERE s.status = 'done'
           AND (area IS NULL OR ST_Intersects(t.footprint, area))
           AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
           AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
           AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
           AND (model IS NULL OR t.model_id = model)
           AND (scene IS NULL OR t.scene_id = scene)
         ORDER BY t.embedding <=> query
         LIMIT k),
    n AS (SELECT count(*) AS c FROM ann)
    SELECT r.* FROM (
        SELECT a.* FROM ann a WHERE (SELECT c FROM n) = k
        UNION ALL
        -- Fallback when the scan ended short (hnsw.max_scan_tuples): exact over the filtered rows, so k rows
        -- come back whenever k exist. A one-time filter: not executed when the scan returned k rows.
        (SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
                t.footprint, t.caption, (t.embedding <=> query)::double precision, s.acquired_at
           FROM tiles t JOIN scenes s ON s.id = t.scene_id
          WHERE (SELECT c FROM n) < k
            AND s.status = 'done'
            AND (area IS NULL OR ST_Intersects(t.footprint, area))
            AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
            AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
            AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
            AND (model IS NULL OR t.model_id = model)
            AND (scene IS NULL OR t.scene_id = scene)
          ORDER BY (t.embedding <=> query) + 0, t.id
          LIMIT k)) r
     ORDER BY r.d, r.id;
END
$$;

-- Image-to-image search with the same single statement: the query tile is left out by the filter itself (not by
-- asking for k + 1 and dropping it), which gives the same k rows as 0005. k now ranges over 1..1000 as in
-- rscapret_search (0005 accepted 0..999 through its k + 1).
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
LANGUAGE plpgsql STABLE
-- Function-level settings end with the call, so the caller's session keeps its own values; ef_search is
-- replaced below by the computed candidate list.
SET hnsw.iterative_scan = relaxed_order
SET hnsw.ef_search = 40
AS $$
DECLARE
    query vector(256);
    model integer;
BEGIN
    SELECT t.embedding, t.model_id INTO query, model
      FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE t.id = tile AND s.status = 'done';
    IF query IS NULL THEN
        RAISE EXCEPTION 'no tile % in a completed scene', tile USING ERRCODE = 'no_data_found';
    END IF;
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search: k must be between 1 and 1000, got %', k; END IF;
    IF (near IS NULL) <> (radius_m IS NULL) THEN RAISE EXCEPTION 'rscapret_search: near and radius_m go together'; END IF;
    IF radius_m IS NOT NULL AND (radius_m <= 0 OR radius_m > 20037508) THEN
        RAISE EXCEPTION 'rscapret_search: radius_m must be in (0, 20037508], got %', radius_m; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    IF near IS NOT NULL AND ST_SRID(near) = 0 THEN near := ST_SetSRID(near, 4326); END IF;

    IF exact THEN
        -- The "+ 0" keeps the planner off the HNSW index, so every filtered row is ranked.
        RETURN QUERY
        SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
               t.footprint, t.caption, (t.embedding <=> query)::double precision, s.acquired_at
          FROM tiles t JOIN scenes s ON s.id = t.scene_id
         WHERE s.status = 'done'
           AND (area IS NULL OR ST_Intersects(t.footprint, area))
           AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
           AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
           AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
           AND t.model_id = model AND t.id <> tile
           AND (scene IS NULL OR t.scene_id = scene)
         ORDER BY (t.embedding <=> query) + 0, t.id
         LIMIT k;
        RETURN;
    END IF;

    -- Candidate list: rscapret.ef_search when set (session, role or database), else max(40, 2k), as in 0006.
    PERFORM set_config('hnsw.ef_search',
        greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                        greatest(40, 2 * k))))::text, true);

    RETURN QUERY
    WITH ann AS MATERIALIZED (
        SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
               t.footprint, t.caption, (t.embedding <=> query)::double precision AS d, s.acquired_at
          FROM tiles t JOIN scenes s ON s.id = t.scene_id
         WHERE s.status = 'done'
           AND (area IS NULL OR ST_Intersects(t.footprint, area))
           AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
           AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
           AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
           AND t.model_id = model AND t.id <> tile
           AND (scene IS NULL OR t.scene_id = scene)
         ORDER BY t.embedding <=> query
         LIMIT k),
    n AS (SELECT count(*) AS c FROM ann)
    SELECT r.* FROM (
        SELECT a.* FROM ann a WHERE (SELECT c FROM n) = k
        UNION ALL
        -- Fallback when the scan ended short (hnsw.max_scan_tuples): exact over the filtered rows, so k rows
        -- come back whenever k exist. A one-time filter: not executed when the scan returned k rows.
        (SELECT t.id, t.scene_id, s.path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
                t.footprint, t.caption, (t.embedding <=> query)::double precision, s.acquired_at
           FROM tiles t JOIN scenes s ON s.id = t.scene_id
          WHERE (SELECT c FROM n) < k
            AND s.status = 'done'
            AND (area IS NULL OR ST_Intersects(t.footprint, area))
            AND (near IS NULL OR ST_DWithin(t.footprint::geography, near::geography, radius_m))
            AND (acquired_after IS NULL OR s.acquired_at >= acquired_after)
            AND (acquired_before IS NULL OR s.acquired_at < acquired_before)
            AND t.model_id = model AND t.id <> tile
            AND (scene IS NULL OR t.scene_id = scene)
          ORDER BY (t.embedding <=> query) + 0, t.id
          LIMIT k)) r
     ORDER BY r.d, r.id;
END
$$;

COMMENT ON FUNCTION rscapret_search IS
  'k nearest tiles by cosine distance to a 256-d query vector, with optional area/near+radius/time/model/scene filters; exact=true skips the ANN index.';
COMMENT ON FUNCTION rscapret_search_by_tile IS
  'k tiles nearest to a stored tile (its image vector and model), with the filters of rscapret_search; the tile itself is excluded.';
