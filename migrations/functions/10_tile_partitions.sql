-- The partitions of tiles, one per model (tiles_m<id>), and the definition of their halfvec HNSW index (history:
-- migration 0016).

-- A model's partition: a plain table attached to tiles (ATTACH takes SHARE UPDATE EXCLUSIVE on tiles, so running
-- searches and ingests are not blocked, where CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE). The
-- parent's indexes and foreign keys are created on it as it is attached (an empty table: instant).
CREATE OR REPLACE FUNCTION rscapret_tiles_partition(model integer) RETURNS regclass
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

-- The body of the models_tiles_partition trigger (AFTER INSERT ON models, migration 0016): a registered model gets its
-- partition at once.
CREATE OR REPLACE FUNCTION rscapret_models_tiles_partition() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM rscapret_tiles_partition(NEW.id);
    RETURN NULL;
END
$$;

-- The one definition of the vector index (the benchmarks drop and recreate it through this function).
CREATE OR REPLACE FUNCTION rscapret_create_tile_vector_index() RETURNS void
LANGUAGE sql AS $$
    CREATE INDEX IF NOT EXISTS tiles_embedding_hnsw ON ONLY tiles
        USING hnsw ((embedding::halfvec(256)) halfvec_cosine_ops) WITH (m = 32, ef_construction = 128);
$$;
COMMENT ON FUNCTION rscapret_create_tile_vector_index() IS
  'creates the (partitioned) halfvec HNSW index of tiles without building it; MigrationRunner builds each partition''s graph concurrently.';
