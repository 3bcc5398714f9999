-- Hybrid search (issue 31, item 1; history: migration 0023): the [RET] vector ranking fused with a text match between
-- the query and the tiles' stored captions, by reciprocal rank fusion. Bounded like every search: the fusion re-ranks
-- the vector ranking's first `depth` rows (at most 1000, rscapret_search's depth) — a tile the vector side does not
-- reach is not found by its caption alone. The text side is PostgreSQL's full-text parser: each candidate's caption
-- scores the share of the query's words (English stemming, stop words dropped) that it holds; a caption sharing no
-- word scores 0. Ranks are 1-based; the vector side ranks by (distance, tile_id), the text side by (text score desc,
-- distance, tile_id), and the fused score is 1/(rrf_k + vector rank) + caption_weight/(rrf_k + text rank), ties by
-- (distance, tile_id). HybridRanking (RsCapRet.Storage) computes the same fusion from the two parts; a test holds them
-- equal. `distance` stays the cosine distance of the vector side, so relevance and every consumer of it keep their
-- meaning.

-- The text side: a text's words as PostgreSQL's English parser sees them (stemmed, stop words dropped), distinct and
-- sorted; NULL when none is left.
CREATE OR REPLACE FUNCTION rscapret_caption_words(caption text)
RETURNS text[] LANGUAGE sql IMMUTABLE AS $$
    SELECT nullif(tsvector_to_array(to_tsvector('english', coalesce(caption, ''))), '{}'::text[])
$$;
COMMENT ON FUNCTION rscapret_caption_words(text) IS
  'a text''s distinct words as the English full-text parser sees them (stemmed, stop words dropped); NULL when none';

-- The share of the query's words that a caption holds (0..1). ts_rank over the words OR-ed would not do: it averages
-- over the words matched, so a caption holding two of the query's words scores as one holding either.
CREATE OR REPLACE FUNCTION rscapret_caption_word_share(caption_words text[], query_words text[])
RETURNS double precision LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN caption_words IS NULL OR query_words IS NULL THEN 0::double precision
                ELSE (SELECT count(*) FROM unnest(query_words) w WHERE w = ANY (caption_words))::double precision
                     / cardinality(query_words) END
$$;
COMMENT ON FUNCTION rscapret_caption_word_share(text[], text[]) IS
  'the share of rscapret_caption_words(query) found in rscapret_caption_words(caption): the hybrid ranking''s text score';

CREATE OR REPLACE FUNCTION rscapret_search_hybrid_page(
    query           vector(256),
    query_text      text,
    k               integer     DEFAULT 10,
    "offset"        integer     DEFAULT 0,
    area            geometry    DEFAULT NULL,
    near            geometry    DEFAULT NULL,
    radius_m        double precision DEFAULT NULL,
    acquired_after  timestamptz DEFAULT NULL,
    acquired_before timestamptz DEFAULT NULL,
    model           integer     DEFAULT NULL,
    scene           bigint      DEFAULT NULL,
    exact           boolean     DEFAULT false,
    caption_weight  double precision DEFAULT 1,
    rrf_k           integer     DEFAULT 60,
    depth           integer     DEFAULT 200)
RETURNS TABLE (tile_id bigint, scene_id bigint, scene_path text, grid_row integer, grid_col integer,
               px_x integer, px_y integer, px_width integer, px_height integer, footprint geometry,
               caption text, distance double precision, acquired_at timestamptz,
               vector_rank integer, text_rank integer, text_score double precision, fused_score double precision)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    words text[] := rscapret_caption_words(query_text);
BEGIN
    IF k IS NULL OR k < 1 OR k > 1000 THEN RAISE EXCEPTION 'rscapret_search_hybrid_page: k must be between 1 and 1000, got %', k; END IF;
    IF "offset" IS NULL OR "offset" < 0 THEN RAISE EXCEPTION 'rscapret_search_hybrid_page: offset must be 0 or more, got %', "offset"; END IF;
    IF depth IS NULL OR depth < 1 OR depth > 1000 THEN RAISE EXCEPTION 'rscapret_search_hybrid_page: depth must be between 1 and 1000, got %', depth; END IF;
    IF k::bigint + "offset" > depth THEN
        RAISE EXCEPTION 'rscapret_search_hybrid_page: offset + k must be at most depth (%), got %', depth, k::bigint + "offset";
    END IF;
    IF caption_weight IS NULL OR caption_weight < 0 OR caption_weight > 100 THEN
        RAISE EXCEPTION 'rscapret_search_hybrid_page: caption_weight must be in [0, 100], got %', caption_weight; END IF;
    IF rrf_k IS NULL OR rrf_k < 1 OR rrf_k > 10000 THEN
        RAISE EXCEPTION 'rscapret_search_hybrid_page: rrf_k must be between 1 and 10000, got %', rrf_k; END IF;
    RETURN QUERY
    WITH v AS (
        SELECT h.*, rscapret_caption_word_share(rscapret_caption_words(h.caption), words) AS ts,
               (row_number() OVER (ORDER BY h.distance, h.tile_id))::integer AS rv
          FROM rscapret_search(query => query, k => depth, area => area, near => near, radius_m => radius_m,
                               acquired_after => acquired_after, acquired_before => acquired_before, model => model,
                               scene => scene, exact => exact) h
    ), t AS (
        SELECT v.*, (row_number() OVER (ORDER BY v.ts DESC, v.distance, v.tile_id))::integer AS rt FROM v
    )
    SELECT t.tile_id, t.scene_id, t.scene_path, t.grid_row, t.grid_col, t.px_x, t.px_y, t.px_width, t.px_height,
           t.footprint, t.caption, t.distance, t.acquired_at, t.rv, t.rt, t.ts,
           1::double precision / (rrf_k + t.rv) + caption_weight / (rrf_k + t.rt) AS fused
      FROM t
     ORDER BY fused DESC, t.distance, t.tile_id
    OFFSET "offset" LIMIT k;
END
$$;
COMMENT ON FUNCTION rscapret_search_hybrid_page(vector, text, integer, integer, geometry, geometry, double precision, timestamptz, timestamptz, integer, bigint, boolean, double precision, integer, integer) IS
  'rows offset + 1 .. offset + k of the vector ranking''s first depth rows re-ranked by reciprocal rank fusion with a caption text match (search --mode hybrid)';
