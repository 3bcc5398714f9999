using System.Buffers.Binary;
using Npgsql;
using NpgsqlTypes;
using Pgvector;

namespace RsCapRet.Storage;

/// <summary>
/// A tile's cell vectors (issue 30): <see cref="Rows"/> × <see cref="Cols"/> L2-normalised shared-space vectors, row
/// by row from the tile's top-left. Stored in half precision (migrations/0021), so read back within 1e-3.
/// </summary>
public sealed record CellVectors(int Rows, int Cols, float[][] Vectors)
{
    public int Dim => Vectors.Length == 0 ? 0 : Vectors[0].Length;

    /// <summary>IEEE binary16, little-endian, cell after cell.</summary>
    public byte[] ToHalfBytes()
    {
        if (Vectors.Length != Rows * Cols) throw new ArgumentException($"{Vectors.Length} cell vectors for a {Rows}x{Cols} grid");
        var dim = Dim;
        var bytes = new byte[Vectors.Length * dim * 2];
        for (var k = 0; k < Vectors.Length; k++)
        {
            if (Vectors[k].Length != dim) throw new ArgumentException($"cell {k} has {Vectors[k].Length} dimensions, cell 0 {dim}");
            for (var i = 0; i < dim; i++)
                BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan((k * dim + i) * 2, 2), (Half)Vectors[k][i]);
        }
        return bytes;
    }

    public static CellVectors FromHalfBytes(int rows, int cols, int dim, byte[] bytes)
    {
        if (bytes.Length != rows * cols * dim * 2) throw new ArgumentException($"{bytes.Length} bytes for {rows}x{cols} cells of {dim} halves");
        var vectors = new float[rows * cols][];
        for (var k = 0; k < vectors.Length; k++)
        {
            var v = vectors[k] = new float[dim];
            for (var i = 0; i < dim; i++) v[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan((k * dim + i) * 2, 2));
        }
        return new CellVectors(rows, cols, vectors);
    }
}

/// <summary>A stored tile's cell vectors beside its own (normalised) vector, as ingested by <see cref="ModelId"/>.</summary>
public sealed record StoredTileCells(long TileId, int ModelId, float[] TileVector, CellVectors Cells);

/// <summary>What the stored cell vectors cost: rows, tiles, and the table's size on disk (with its TOAST and index).</summary>
public sealed record CellStorage(long TilesWithCells, long Tiles, long TableBytes, long TilesTableBytes)
{
    public double BytesPerTile => TilesWithCells == 0 ? 0 : (double)TableBytes / TilesWithCells;
}

public sealed partial class CatalogStore
{
    /// <summary>The stored cell vectors of these tiles (those ingested with --cells; others are absent from the answer).</summary>
    public async Task<IReadOnlyDictionary<long, StoredTileCells>> GetTileCellsAsync(IReadOnlyCollection<long> tileIds, CancellationToken ct = default)
    {
        var found = new Dictionary<long, StoredTileCells>();
        if (tileIds.Count == 0) return found;
        await using var cmd = ReadSource.CreateCommand("""
            SELECT t.id, t.model_id, t.embedding, c.cell_rows, c.cell_cols, c.dim, c.cells
              FROM tiles t JOIN tile_cells c ON (c.scene_id, c.grid_row, c.grid_col, c.model_id) = (t.scene_id, t.grid_row, t.grid_col, t.model_id)
             WHERE t.id = ANY($1)
            """);
        cmd.Parameters.Add(new() { Value = tileIds.ToArray(), NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Bigint });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            var cells = CellVectors.FromHalfBytes(r.GetInt16(3), r.GetInt16(4), r.GetInt16(5), r.GetFieldValue<byte[]>(6));
            found[r.GetInt64(0)] = new StoredTileCells(r.GetInt64(0), r.GetInt32(1), r.GetFieldValue<Vector>(2).ToArray(), cells);
        }
        return found;
    }

    /// <summary>
    /// The stored cells of a scene's tiles in grid order, with each tile's grid place (land-use maps at cell
    /// resolution), streamed: memory holds one tile's cells, however large the scene.
    /// </summary>
    public async IAsyncEnumerable<(int GridRow, int GridCol, CellVectors Cells)> SceneCellsAsync(long sceneId,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand(
            "SELECT grid_row, grid_col, cell_rows, cell_cols, dim, cells FROM tile_cells WHERE scene_id = $1 ORDER BY grid_row, grid_col");
        cmd.Parameters.Add(new() { Value = sceneId });
        await using var r = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        while (await r.ReadAsync(ct))
            yield return (r.GetInt32(0), r.GetInt32(1), CellVectors.FromHalfBytes(r.GetInt16(2), r.GetInt16(3), r.GetInt16(4), r.GetFieldValue<byte[]>(5)));
    }

    /// <summary>
    /// Rows and on-disk size of tile_cells (table, TOAST and primary key) beside the tiles table's (its partitions,
    /// with their indexes, HNSW graphs included).
    /// </summary>
    public async Task<CellStorage> CellStorageAsync(CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT (SELECT count(*) FROM tile_cells), (SELECT count(*) FROM tiles),
                   pg_total_relation_size('tile_cells'),
                   coalesce((SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits WHERE inhparent = 'tiles'::regclass), 0)
            """);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return new CellStorage(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3));
    }

    /// <summary>Writes the cells of tiles just copied in (same transaction: the tiles' keys must be visible).</summary>
    internal static async Task WriteCellsAsync(NpgsqlConnection conn, long sceneId, int modelId, IReadOnlyList<TileRecord> tiles, CancellationToken ct)
    {
        await using var importer = await conn.BeginBinaryImportAsync(
            "COPY tile_cells (scene_id, grid_row, grid_col, model_id, cell_rows, cell_cols, dim, cells) FROM STDIN (FORMAT BINARY)", ct);
        foreach (var t in tiles)
        {
            var cells = t.Cells!;
            await importer.StartRowAsync(ct);
            await importer.WriteAsync(sceneId, NpgsqlDbType.Bigint, ct);
            await importer.WriteAsync(t.GridRow, NpgsqlDbType.Integer, ct);
            await importer.WriteAsync(t.GridCol, NpgsqlDbType.Integer, ct);
            await importer.WriteAsync(modelId, NpgsqlDbType.Integer, ct);
            await importer.WriteAsync((short)cells.Rows, NpgsqlDbType.Smallint, ct);
            await importer.WriteAsync((short)cells.Cols, NpgsqlDbType.Smallint, ct);
            await importer.WriteAsync((short)cells.Dim, NpgsqlDbType.Smallint, ct);
            await importer.WriteAsync(cells.ToHalfBytes(), NpgsqlDbType.Bytea, ct);
        }
        await importer.CompleteAsync(ct);
    }
}
