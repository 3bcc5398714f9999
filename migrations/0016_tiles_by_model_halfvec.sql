-- Vectors sized for memory, and one graph per model (issue #17, item 2).
--
-- 1. tiles is LIST-partitioned by model_id: one partition per model (tiles_m<id>), made when the model is
--    registered (trigger on models). Vectors of different models are not comparable; now they never share an
--    HNSW graph either, and a search with a model filter is pruned to that model's partition (at plan time, or at
--    executor start for a generic plan). A partitioned table's unique constraints must hold the partition key, and
--    a distributed PostgreSQL's (Citus) must hold the distribution column, which would be scene_id (README,
--    "Capacity plan": a scene's tiles on one node, scenes a reference table), so both are in every unique
--    constraint now: the primary key is (id, scene_id, model_id) — id alone stays unique, it comes from one
--    identity sequence — and the tile grid key (scene_id, grid_row, grid_col, model_id).
-- 2. The HNSW index is on embedding::halfvec(256) (halfvec_cosine_ops): half the bytes per stored vector, the
--    same m = 32 / ef_construction = 128 graph as 0007. The table keeps the full-precision vector(256), and the
--    searches rank the index's candidates (2k of them) by the full-precision distance, so the order and the
--    distances they return are exact for the rows they return.
--
-- The rows are copied once into the partitioned table (in this migration's transaction). The HNSW index is
-- created here ON ONLY the parent, without building anything; MigrationRunner then builds each partition's graph
-- with CREATE INDEX CONCURRENTLY (which cannot run in a transaction), printing pg_stat_progress_create_index,
-- and attaches it, so a large catalogue is indexed while it stays readable and writable. Until a partition's
-- graph is attached, searches on it take the exact path (correct, slower).

DROP VIEW tile_catalog;
ALTER TABLE tiles RENAME TO tiles_unpartitioned;

CREATE TABLE tiles (
    id               bigint      GENERATED ALWAYS AS IDENTITY,
    scene_id         bigint      NOT NULL REFERENCES scenes (id) ON DELETE CASCADE,
    model_id         integer     NOT NULL REFERENCES models (id),
    grid_row         integer     NOT NULL,
    grid_col         integer     NOT NULL,
    px_x             integer     NOT NULL,   -- pixel window in the scene (source resolution)
    px_y             integer     NOT NULL,
    px_width         integer     NOT NULL,
    px_height        integer     NOT NULL,
    footprint        geometry(Polygon, 4326),           -- null only for scenes ingested without a CRS (--no-crs)
    footprint_native geometry(Polygon)       NOT NULL,  -- SRID = the scene's EPSG (0 when unknown or pixel space)
    nodata_fraction  real        NOT NULL DEFAULT 0,
    caption          text,
    embedding        vector(256) NOT NULL
) PARTITION BY LIST (model_id);

-- A model's partition: a plain table attached to tiles (ATTACH takes SHARE UPDATE EXCLUSIVE on tiles, so running
-- searches and ingests are not blocked, where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE). The
-- parent's indexes and foreign keys are created on it as it is attached (an empty table: instant).
CREATE FUNCTION rscapret_tiles_partition(model integer) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    part text := 'tiles_m' || model;
BEGIN
    IF model IS NULL THEN RAISE EXCEPTION 'rscapret_tiles_partition: model is null'; END IF;
    IF to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE tiles INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format('ALTER TABLE tiles ATTACH PARTITION %I FOR VALUES IN (%s)', part, model);
    END IF;
    RETURN part::regclass;
END
$$;
COMMENT ON FUNCTION rscapret_tiles_partition(integer) IS
  'the tiles partition of a model (tiles_m<id>), created and attached when missing; models'' insert trigger calls it.';

CREATE FUNCTION rscapret_models_tiles_partition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rscapret_tiles_partition(NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER models_tiles_partition AFTER INSERT ON models
    FOR EACH ROW EXECUTE FUNCTION rscapret_models_tiles_partition();

DO $$
DECLARE
    m integer;
BEGIN
    FOR m IN SELECT id FROM models ORDER BY id LOOP
        PERFORM rscapret_tiles_partition(m);
    END LOOP;
END
$$;

INSERT INTO tiles (id, scene_id, model_id, grid_row, grid_col, px_x, px_y, px_width, px_height, footprint,
                   footprint_native, nodata_fraction, caption, embedding)
OVERRIDING SYSTEM VALUE
SELECT id, scene_id, model_id, grid_row, grid_col, px_x, px_y, px_width, px_height, footprint,
       footprint_native, nodata_fraction, caption, embedding
  FROM tiles_unpartitioned;
SELECT setval(pg_get_serial_sequence('tiles', 'id'), coalesce((SELECT max(id) FROM tiles), 0) + 1, false);
DROP TABLE tiles_unpartitioned;

ALTER TABLE tiles ADD PRIMARY KEY (id, scene_id, model_id);
ALTER TABLE tiles ADD UNIQUE (scene_id, grid_row, grid_col, model_id);
CREATE INDEX tiles_footprint_gist ON tiles USING gist (footprint);
CREATE INDEX tiles_scene_idx      ON tiles (scene_id);
ANALYZE tiles;

-- The one definition of the vector index (the benchmarks drop and recreate it through this function).
CREATE FUNCTION rscapret_create_tile_vector_index() RETURNS void
LANGUAGE sql AS $$
    CREATE INDEX IF NOT EXISTS tiles_embedding_hnsw ON ONLY tiles
        USING hnsw ((embedding::halfvec(256)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128);
$$;
COMMENT ON FUNCTION rscapret_create_tile_vector_index() IS
  'creates the (partitioned) halfvec HNSW index of tiles without building it; MigrationRunner builds each partition''s graph concurrently.';
SELECT rscapret_create_tile_vector_index();

CREATE VIEW tile_catalog AS
SELECT t.id            AS tile_id,
       t.scene_id,
       s.path          AS scene_path,
       s.acquired_at,
       s.crs_epsg,
       t.model_id,
       m.name          AS model_name,
       m.version       AS model_version,
       t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
       t.footprint,
       t.caption,
       t.embedding
  FROM tiles t
  JOIN scenes s ON s.id = t.scene_id
  JOIN models m ON m.id = t.model_id
 WHERE s.status = 'done';

-- The searches of 0013 with the halfvec graph: the index scan yields 2k candidates in halfvec order (iterative
-- scan, so filters keep it going until 2k pass), each with its full-precision distance; the k nearest of those by
-- (distance, tile_id) are returned when at least k candidates came back, otherwise the exact search answers
-- alone. Signatures, checks, messages and settings are 0013's.
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
        PERFORM set_config('hnsw.iterative_scan', 'strict_order', true);
        PERFORM set_config('hnsw.ef_search',
            greatest(k, least(1000, coalesce(nullif(current_setting('rscapret.ef_search', true), '')::integer,
                                            greatest(40, 2 * k))))::text, true);
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
