using NetTopologySuite.Geometries;
using NpgsqlTypes;
using Pgvector;

namespace RsCapRet.Storage;

/// <summary>Which tiles to export: completed scenes only, optionally one scene, one area (EPSG:4326), one model by name.</summary>
public sealed record ExportFilter(Geometry? Area = null, long? SceneId = null, string? ModelName = null);

/// <summary>One exported row: the layout public embedding datasets use (footprint, caption, time, model, a shared-space vector).</summary>
public sealed record ExportRow(long TileId, byte[] FootprintWkb, Envelope Bounds, string? Caption, string Scene, DateTimeOffset? AcquiredAt,
    string Model, float[] Embedding);

public sealed partial class CatalogStore
{
    /// <summary>
    /// Tiles of completed scenes that an export leaves out because they have no footprint (scenes without
    /// georeferencing, e.g. a plain JPEG), and how many scenes hold them; an area filter leaves them out anyway.
    /// </summary>
    public async Task<(long Tiles, long Scenes)> CountTilesWithoutFootprintAsync(ExportFilter filter, CancellationToken ct = default)
    {
        if (filter.Area is not null) return (0, 0);
        await using var cmd = ReadSource.CreateCommand("""
            SELECT count(*), count(DISTINCT t.scene_id)
              FROM tiles t JOIN scenes s ON s.id = t.scene_id JOIN models m ON m.id = t.model_id
             WHERE s.status = 'done' AND t.footprint IS NULL
               AND ($1::bigint IS NULL OR t.scene_id = $1)
               AND ($2::text IS NULL OR m.name = $2)
            """);
        cmd.Parameters.Add(new() { Value = (object?)filter.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = (object?)filter.ModelName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        await r.ReadAsync(ct);
        return (r.GetInt64(0), r.GetInt64(1));
    }

    /// <summary>
    /// The tiles of completed scenes that pass <paramref name="filter"/>, in id order, from one database cursor read as
    /// it is consumed (memory stays flat whatever the catalogue's size); <paramref name="scenePath"/> maps each
    /// scene's stored path to the one exported.
    /// </summary>
    public async IAsyncEnumerable<ExportRow> ExportRowsAsync(ExportFilter filter, Func<string, string> scenePath,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("""
            SELECT t.id, ST_AsBinary(t.footprint), ST_XMin(t.footprint), ST_YMin(t.footprint), ST_XMax(t.footprint), ST_YMax(t.footprint),
                   t.caption, s.path, s.acquired_at, m.name || ' ' || m.version, t.embedding
              FROM tiles t JOIN scenes s ON s.id = t.scene_id JOIN models m ON m.id = t.model_id
             WHERE s.status = 'done' AND t.footprint IS NOT NULL
               AND ($1::geometry IS NULL OR ST_Intersects(t.footprint, $1))
               AND ($2::bigint IS NULL OR t.scene_id = $2)
               AND ($3::text IS NULL OR m.name = $3)
             ORDER BY t.id
            """);
        cmd.Parameters.Add(new() { Value = (object?)filter.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)filter.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = (object?)filter.ModelName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        // Sequential access: each row is read from the wire as it is consumed, never the whole result at once.
        await using var r = await cmd.ExecuteReaderAsync(System.Data.CommandBehavior.SequentialAccess, ct);
        while (await r.ReadAsync(ct))
        {
            var id = r.GetInt64(0);
            var wkb = r.GetFieldValue<byte[]>(1);
            double minX = r.GetDouble(2), minY = r.GetDouble(3), maxX = r.GetDouble(4), maxY = r.GetDouble(5);   // in column order
            var env = new Envelope(minX, maxX, minY, maxY);
            var caption = r.IsDBNull(6) ? null : r.GetString(6);
            var scene = scenePath(r.GetString(7));
            DateTimeOffset? acquired = r.IsDBNull(8) ? null : new DateTimeOffset(r.GetDateTime(8), TimeSpan.Zero);
            var model = r.GetString(9);
            var embedding = r.GetFieldValue<Vector>(10).ToArray();
            yield return new ExportRow(id, wkb, env, caption, scene, acquired, model, embedding);
        }
    }
}
