-- Image-to-image search for analysts: tiles that look like a given tile (its stored image vector, same model),
-- with the same optional filters as rscapret_search. The query tile itself is left out of the results.
CREATE FUNCTION rscapret_search_by_tile(
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
    q vector(256);
    m integer;
BEGIN
    SELECT c.embedding, c.model_id INTO q, m FROM tile_catalog c WHERE c.tile_id = tile;
    IF q IS NULL THEN
        RAISE EXCEPTION 'no tile % in a completed scene', tile USING ERRCODE = 'no_data_found';
    END IF;
    RETURN QUERY
    SELECT s.* FROM rscapret_search(q, k + 1, area, near, radius_m, acquired_after, acquired_before, m, scene, exact) s
     WHERE s.tile_id <> tile
     ORDER BY s.distance, s.tile_id
     LIMIT k;
END
$$;

COMMENT ON FUNCTION rscapret_search_by_tile IS
  'k tiles nearest to a stored tile (its image vector and model), with the filters of rscapret_search; the tile itself is excluded.';
