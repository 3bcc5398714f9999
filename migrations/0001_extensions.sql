-- PostGIS for footprints, pgvector for 256-d image/[RET] vectors.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS vector;
