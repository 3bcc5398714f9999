-- Paging for analysts (issue 29, item 2; history: migration 0020): rows offset + 1 .. offset + k of rscapret_search's
-- ranking (and of rscapret_search_by_tile's), exactly as CatalogStore pages for the CLI (--offset) and the API
-- (offset=): the ranking function is asked for offset + k rows and the first offset are skipped, so page 2 of k = 5 is
-- rows 6-10 of k = 10 (the index's candidate list grows with the rows asked for, so one search of offset + k rows is
-- what a page is cut from). The ranking is 1,000 rows deep (999 for a tile's look-alikes): offset + k at most that.

CREATE OR REPLACE FUNCTION rscapret_search_page(
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
    exact           boolean     DEFAULT false)
RETURNS TABLE (tile_id bigint, scene_id bigint, scene_path text, grid_row integer, grid_col integer,
               px_x integer, px_y integer, px_width integer, px_height integer, footprint geometry,
               caption text, distance double precision, acquired_at timestamptz)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search_page: k must be between 1 and 1000, got %', k; END IF;
    IF "offset" IS NULL OR "offset" < 0 THEN RAISE EXCEPTION 'rscapret_search_page: offset must be 0 or more, got %', "offset"; END IF;
    IF k::bigint + "offset" > 1000 THEN
        RAISE EXCEPTION 'rscapret_search_page: offset + k must be at most 1000 (the ranking is 1000 rows deep), got %', k::bigint + "offset";
    END IF;
    RETURN QUERY
    SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
           h.footprint, h.caption, h.distance, h.acquired_at
      FROM rscapret_search(query => query, k => k + "offset", area => area, near => near, radius_m => radius_m,
                           acquired_after => acquired_after, acquired_before => acquired_before, model => model,
                           scene => scene, exact => exact) h
     ORDER BY h.distance, h.tile_id
    OFFSET "offset";
END
$$;
COMMENT ON FUNCTION rscapret_search_page(vector, integer, integer, geometry, geometry, double precision, timestamptz, timestamptz, integer, bigint, boolean) IS
  'rows offset + 1 .. offset + k of rscapret_search''s ranking (offset + k at most 1000): what --offset and the API''s offset return';

CREATE OR REPLACE FUNCTION rscapret_search_by_tile_page(
    tile            bigint,
    k               integer     DEFAULT 10,
    "offset"        integer     DEFAULT 0,
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
BEGIN
    IF k IS NULL OR k < 1 OR k > 999 THEN RAISE EXCEPTION 'rscapret_search_by_tile_page: k must be between 1 and 999, got %', k; END IF;
    IF "offset" IS NULL OR "offset" < 0 THEN RAISE EXCEPTION 'rscapret_search_by_tile_page: offset must be 0 or more, got %', "offset"; END IF;
    IF k::bigint + "offset" > 999 THEN
        RAISE EXCEPTION 'rscapret_search_by_tile_page: offset + k must be at most 999 (the ranking is 999 rows deep), got %', k::bigint + "offset";
    END IF;
    RETURN QUERY
    SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
           h.footprint, h.caption, h.distance, h.acquired_at
      FROM rscapret_search_by_tile(tile => tile, k => k + "offset", area => area, near => near, radius_m => radius_m,
                                   acquired_after => acquired_after, acquired_before => acquired_before, scene => scene,
                                   exact => exact) h
     ORDER BY h.distance, h.tile_id
    OFFSET "offset";
END
$$;
COMMENT ON FUNCTION rscapret_search_by_tile_page(bigint, integer, integer, geometry, geometry, double precision, timestamptz, timestamptz, bigint, boolean) IS
  'rows offset + 1 .. offset + k of rscapret_search_by_tile''s ranking (offset + k at most 999)';
