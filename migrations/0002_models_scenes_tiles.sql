-- The catalogue: which model produced what, which scene files were ingested, and their tiles.

-- A model identity: backbones + heads. Vectors from different models are not comparable, so every tile row
-- names its model and searches filter on it.
CREATE TABLE models (
    id               integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name             text        NOT NULL,
    version          text        NOT NULL,
    llm_backbone     text        NOT NULL,   -- e.g. meta-llama/Llama-2-7b-hf, or models/default/llm
    vision_backbone  text        NOT NULL,   -- e.g. openai/clip-vit-large-patch14
    heads_sha256     text        NOT NULL,   -- content hash of the RS-CapRet heads checkpoint
    shared_dim       integer     NOT NULL CHECK (shared_dim = 256),  -- tiles.embedding is vector(256)
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (name, version, heads_sha256)
);

-- One row per (scene file content, model): re-ingesting identical bytes with the same model is a no-op,
-- a changed file (new hash) is a new row.
CREATE TABLE scenes (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    path             text        NOT NULL,
    content_sha256   text        NOT NULL,
    size_bytes       bigint      NOT NULL CHECK (size_bytes >= 0),
    model_id         integer     NOT NULL REFERENCES models (id),
    width_px         integer,
    height_px        integer,
    band_count       integer,
    crs_wkt          text,
    crs_epsg         integer,
    footprint        geometry(Polygon, 4326),
    acquired_at      timestamptz,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'ingesting', 'done', 'empty', 'failed')),
    error            text,
    tile_count       integer     NOT NULL DEFAULT 0,
    skipped_tiles    integer     NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (content_sha256, model_id)
);
CREATE INDEX scenes_path_idx        ON scenes (path);
CREATE INDEX scenes_acquired_at_idx ON scenes (acquired_at);
CREATE INDEX scenes_footprint_gist  ON scenes USING gist (footprint);

CREATE TABLE tiles (
    id               bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    embedding        vector(256) NOT NULL,
    UNIQUE (scene_id, grid_row, grid_col)
);
-- Cosine distance (<=>) is what retrieval ranks by; GiST serves ST_Intersects/ST_DWithin filters.
CREATE INDEX tiles_embedding_hnsw  ON tiles USING hnsw (embedding vector_cosine_ops);
CREATE INDEX tiles_footprint_gist  ON tiles USING gist (footprint);
CREATE INDEX tiles_scene_idx       ON tiles (scene_id);
