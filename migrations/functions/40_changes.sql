-- What changed (history: migrations 0012, 0018): tiles of a "before" set and an "after" set that cover the same
-- ground, ranked by how far apart their vectors are. Two tiles cover the same ground when their footprints overlap by
-- at least min_iou (intersection over union, planar in EPSG:4326: a tile is small enough that the ratio is the same as
-- in metres) and the same model encoded both. Pairing is by footprint, never by grid row/column, so scenes on
-- different grids or CRSs pair too; each before tile pairs with its best-overlapping after tiles only (flush edge
-- tiles).
--
--   rscapret_changes(before_scene, after_scene, k, min_iou, area, toward)      a scene each
--   rscapret_changes(area, before => tstzrange, after => tstzrange, k, min_iou, model, toward)
--                                                                              an area and two acquisition-time ranges
-- Rows: both tile ids and scenes, both captions, the cosine distance between the two vectors (0 = unchanged), the
-- overlap's IoU and footprint, both acquisition times. With toward (a query vector, e.g. the [RET] vector of "new
-- buildings"), rows rank by toward_gain = how much closer to the query the after tile is than the before tile.
-- Inputs that cannot pair (a scene not ingested, scenes that do not overlap, different models, empty time ranges)
-- return no rows and say why in a NOTICE; malformed arguments raise. Any version kept in the catalogue pairs, a
-- removed or superseded one too, until it is pruned.
-- Bounded work: the before set may hold at most rscapret.changes_max_tiles tiles (default 250000); each before
-- tile probes the GiST index on footprints for its after partners.

-- The pairing and ranking shared by both rscapret_changes variants (scene ids already checked).
CREATE OR REPLACE FUNCTION rscapret_change_pairs(
    before_scenes bigint[],
    after_scenes  bigint[],
    k             integer,
    min_iou       double precision,
    area          geometry,
    toward        vector(256))
RETURNS TABLE (before_tile bigint, after_tile bigint, before_scene bigint, after_scene bigint,
               before_caption text, after_caption text, distance double precision, toward_gain double precision,
               iou double precision, overlap geometry, before_acquired timestamptz, after_acquired timestamptz)
LANGUAGE plpgsql STABLE
-- Plan every call with its own area: after five calls PL/pgSQL would otherwise switch to a generic plan that
-- cannot know how small the area is (bench changes: a 1 % bbox went from 56 ms to 700 ms, near the whole scene's 1.8 s).
SET plan_cache_mode = force_custom_plan
AS $$
DECLARE
    before_tiles bigint;
    max_tiles    bigint := coalesce(nullif(current_setting('rscapret.changes_max_tiles', true), '')::bigint, 250000);
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_changes: k must be between 1 and 1000, got %', k; END IF;
    IF min_iou IS NULL OR min_iou <= 0 OR min_iou > 1 THEN
        RAISE EXCEPTION 'rscapret_changes: min_iou must be in (0, 1], got %', min_iou; END IF;
    IF area IS NOT NULL AND ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF area IS NOT NULL AND ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;

    SELECT count(*) INTO before_tiles FROM tiles t
     WHERE t.scene_id = ANY (before_scenes) AND (area IS NULL OR ST_Intersects(t.footprint, area));
    IF before_tiles > max_tiles THEN
        RAISE EXCEPTION 'rscapret_changes: the before set has % tiles, more than rscapret.changes_max_tiles (%); give a smaller area',
            before_tiles, max_tiles;
    END IF;

    RETURN QUERY
    WITH candidates AS (
        SELECT b.id AS b_id, a.id AS a_id, b.scene_id AS b_scene, a.scene_id AS a_scene,
               b.caption AS b_caption, a.caption AS a_caption, b.embedding AS b_vec, a.embedding AS a_vec,
               ST_Area(b.footprint) AS b_area, ST_Area(a.footprint) AS a_area, b.footprint AS b_fp, a.footprint AS a_fp
          FROM tiles b
          JOIN tiles a ON a.footprint && b.footprint          -- GiST on tiles.footprint
                      AND a.scene_id = ANY (after_scenes)
                      AND a.model_id = b.model_id
         WHERE b.scene_id = ANY (before_scenes)
           AND b.footprint IS NOT NULL
           AND (area IS NULL OR ST_Intersects(b.footprint, area))
           -- The intersection of two footprints is no larger than that of their boxes, and IoU >= min_iou needs an
           -- intersection of at least min_iou x the larger footprint: this drops edge neighbours before ST_Intersection.
           AND (least(ST_XMax(a.footprint), ST_XMax(b.footprint)) - greatest(ST_XMin(a.footprint), ST_XMin(b.footprint)))
             * (least(ST_YMax(a.footprint), ST_YMax(b.footprint)) - greatest(ST_YMin(a.footprint), ST_YMin(b.footprint)))
               >= min_iou * greatest(ST_Area(a.footprint), ST_Area(b.footprint)) * 0.999
    ), pairs AS (
        SELECT c.*, ST_Intersection(c.b_fp, c.a_fp) AS inter FROM candidates c
    ), scored AS (
        -- Each before tile pairs with the after tiles it overlaps most (all of them on a tie): the flush last column
        -- and row of a grid overlap their neighbours by more than min_iou, and would otherwise also pair with the
        -- neighbours' counterparts.
        SELECT q.*, max(q.pair_iou) OVER (PARTITION BY q.b_id) AS b_best
          FROM (SELECT p.*, ST_Area(p.inter) / nullif(p.b_area + p.a_area - ST_Area(p.inter), 0) AS pair_iou FROM pairs p) q
    )
    SELECT s.b_id, s.a_id, s.b_scene, s.a_scene, s.b_caption, s.a_caption,
           (s.b_vec <=> s.a_vec)::double precision,
           CASE WHEN toward IS NULL THEN NULL ELSE ((s.b_vec <=> toward) - (s.a_vec <=> toward))::double precision END,
           s.pair_iou, s.inter, sb.acquired_at, sa.acquired_at
      FROM scored s
      JOIN scenes sb ON sb.id = s.b_scene
      JOIN scenes sa ON sa.id = s.a_scene
     WHERE s.pair_iou >= min_iou AND s.pair_iou >= s.b_best - 1e-9
     ORDER BY CASE WHEN toward IS NULL THEN (s.b_vec <=> s.a_vec) ELSE (s.b_vec <=> toward) - (s.a_vec <=> toward) END DESC,
              s.b_id, s.a_id
     LIMIT k;
END
$$;
COMMENT ON FUNCTION rscapret_change_pairs IS
  'Internal: the pairing and ranking shared by both rscapret_changes variants (scene ids already checked).';

-- Two scenes, by id.
CREATE OR REPLACE FUNCTION rscapret_changes(
    before_scene bigint,
    after_scene  bigint,
    k            integer          DEFAULT 20,
    min_iou      double precision DEFAULT 0.5,
    area         geometry         DEFAULT NULL,
    toward       vector(256)      DEFAULT NULL)
RETURNS TABLE (before_tile bigint, after_tile bigint, before_scene_id bigint, after_scene_id bigint,
               before_caption text, after_caption text, distance double precision, toward_gain double precision,
               iou double precision, overlap geometry, before_acquired timestamptz, after_acquired timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    b scenes%ROWTYPE;
    a scenes%ROWTYPE;
BEGIN
    IF before_scene IS NULL OR after_scene IS NULL THEN RAISE EXCEPTION 'rscapret_changes: before_scene and after_scene are required'; END IF;
    IF before_scene = after_scene THEN RAISE EXCEPTION 'rscapret_changes: before and after are the same scene (%)', before_scene; END IF;
    SELECT * INTO b FROM scenes WHERE id = before_scene;
    SELECT * INTO a FROM scenes WHERE id = after_scene;
    IF b.id IS NULL THEN RAISE NOTICE 'no scene % in the catalogue (before)', before_scene; RETURN; END IF;
    IF a.id IS NULL THEN RAISE NOTICE 'no scene % in the catalogue (after)', after_scene; RETURN; END IF;
    -- Notices name scenes by id only: the API passes them on, and paths are the server's business.
    IF b.status NOT IN ('done', 'superseded', 'removed') OR b.tile_count = 0 THEN
        RAISE NOTICE 'scene % (before) is not ingested: its status is %', b.id, b.status; RETURN; END IF;
    IF a.status NOT IN ('done', 'superseded', 'removed') OR a.tile_count = 0 THEN
        RAISE NOTICE 'scene % (after) is not ingested: its status is %', a.id, a.status; RETURN; END IF;
    IF b.model_id <> a.model_id THEN
        RAISE NOTICE 'scenes % and % were encoded by different models (% and %); their vectors are not comparable',
            b.id, a.id, b.model_id, a.model_id;
        RETURN;
    END IF;
    IF b.footprint IS NULL OR a.footprint IS NULL THEN
        RAISE NOTICE 'scene % has no geographic footprint (ingested without a CRS); it cannot be paired by ground',
            CASE WHEN b.footprint IS NULL THEN b.id ELSE a.id END;
        RETURN;
    END IF;
    IF NOT ST_Intersects(b.footprint, a.footprint) THEN
        RAISE NOTICE 'scenes % and % do not overlap', b.id, a.id; RETURN; END IF;
    RETURN QUERY SELECT * FROM rscapret_change_pairs(ARRAY[b.id], ARRAY[a.id], k, min_iou, area, toward);
END
$$;

-- An area and two acquisition-time ranges: the current version of every path (a removed path's last one too)
-- acquired in a range and intersecting the area.
CREATE OR REPLACE FUNCTION rscapret_changes(
    area     geometry,
    before   tstzrange,
    after    tstzrange,
    k        integer          DEFAULT 20,
    min_iou  double precision DEFAULT 0.5,
    model    integer          DEFAULT NULL,
    toward   vector(256)      DEFAULT NULL)
RETURNS TABLE (before_tile bigint, after_tile bigint, before_scene_id bigint, after_scene_id bigint,
               before_caption text, after_caption text, distance double precision, toward_gain double precision,
               iou double precision, overlap geometry, before_acquired timestamptz, after_acquired timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    before_ids bigint[];
    after_ids  bigint[];
BEGIN
    IF area IS NULL THEN RAISE EXCEPTION 'rscapret_changes: an area is required with time ranges (it bounds the work)'; END IF;
    IF before IS NULL OR after IS NULL OR isempty(before) OR isempty(after) THEN
        RAISE EXCEPTION 'rscapret_changes: before and after must be non-empty time ranges'; END IF;
    IF before && after THEN RAISE EXCEPTION 'rscapret_changes: the before range % and the after range % overlap', before, after; END IF;
    IF ST_SRID(area) = 0 THEN area := ST_SetSRID(area, 4326); END IF;
    IF ST_SRID(area) <> 4326 THEN area := ST_Transform(area, 4326); END IF;
    before_ids := ARRAY(SELECT s.id FROM scenes s WHERE s.status IN ('done', 'removed') AND s.acquired_at <@ before
                          AND ST_Intersects(s.footprint, area) AND (model IS NULL OR s.model_id = model));
    after_ids  := ARRAY(SELECT s.id FROM scenes s WHERE s.status IN ('done', 'removed') AND s.acquired_at <@ after
                          AND ST_Intersects(s.footprint, area) AND (model IS NULL OR s.model_id = model));
    IF cardinality(before_ids) = 0 THEN RAISE NOTICE 'no ingested scene acquired in % covers the area', before; RETURN; END IF;
    IF cardinality(after_ids) = 0 THEN RAISE NOTICE 'no ingested scene acquired in % covers the area', after; RETURN; END IF;
    RETURN QUERY SELECT * FROM rscapret_change_pairs(before_ids, after_ids, k, min_iou, area, toward);
END
$$;
