-- Cell vectors of tiles (issue 30, ingest --cells): the 7 × 7 L2-normalised shared-space vectors of a tile's last
-- feature map, kept so that localising a query inside a tile, hot cells of search results, per-cell heat maps and
-- land-use maps at cell resolution need no model pass over the imagery. Half precision (IEEE binary16,
-- little-endian, row by row from the tile's top-left, dim values per cell): 49 × 256 × 2 = 25,088 bytes a tile.
-- Read by tile only, so no vector index. Keyed like the tile (scene, grid position) because the scene's tiles are
-- written by COPY without returning their ids (with model_id: tiles' grid key holds its partition key, 0016);
-- deleting a tile (or its scene version) deletes its cells.
CREATE TABLE tile_cells (
    scene_id  bigint   NOT NULL,
    grid_row  integer  NOT NULL,
    grid_col  integer  NOT NULL,
    model_id  integer  NOT NULL,
    cell_rows smallint NOT NULL CHECK (cell_rows > 0),
    cell_cols smallint NOT NULL CHECK (cell_cols > 0),
    dim       smallint NOT NULL CHECK (dim > 0),
    cells     bytea    NOT NULL,
    PRIMARY KEY (scene_id, grid_row, grid_col),
    FOREIGN KEY (scene_id, grid_row, grid_col, model_id) REFERENCES tiles (scene_id, grid_row, grid_col, model_id) ON DELETE CASCADE,
    CHECK (octet_length(cells) = 2 * cell_rows * cell_cols * dim)
);
-- Half-precision vectors do not compress: store them out of line without trying.
ALTER TABLE tile_cells ALTER COLUMN cells SET STORAGE EXTERNAL;
