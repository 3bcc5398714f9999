using NetTopologySuite.Geometries;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>One acquisition per place (issue 29, the map): searches and heat maps that keep the newest acquisition of each place.</summary>
public sealed partial class CatalogStore
{
    /// <summary>
    /// A page of the ranking that keeps one acquisition per place (rscapret_search_newest, migrations/0022): the
    /// newest tile that <paramref name="filter"/> lets through where acquisitions overlap. Pages as
    /// <see cref="SearchAsync(float[], int, int, SearchFilter?, CancellationToken)"/> does; <paramref name="excludeTile"/>
    /// is left out (a tile's look-alikes).
    /// </summary>
    private async Task<IReadOnlyList<TileHit>> SearchNewestPerPlaceAsync(float[] query, int k, int offset, SearchFilter filter,
        long? excludeTile, CancellationToken ct)
    {
        await using var cmd = ReadSource.CreateCommand("""
            SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
                   h.footprint, h.caption, h.distance, h.acquired_at, s.out_of_range
              FROM rscapret_search_newest(query => $1, k => $2, "offset" => $3, area => $4, near => $5, radius_m => $6,
                                          acquired_after => $7, acquired_before => $8, model => $9, scene => $10,
                                          exclude_tile => $11, exact => $12) h
              JOIN scenes s ON s.id = h.scene_id
             ORDER BY h.distance, h.tile_id
            """);
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        cmd.Parameters.Add(new() { Value = k });
        cmd.Parameters.Add(new() { Value = offset });
        cmd.Parameters.Add(new() { Value = (object?)filter.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)filter.Near ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)filter.RadiusMetres ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
        cmd.Parameters.Add(new() { Value = (object?)filter.AcquiredAfter?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)filter.AcquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)filter.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = (object?)filter.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = (object?)excludeTile ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = filter.Exact });
        return await ReadHitsAsync(cmd, 0, ct);
    }

    /// <summary>
    /// <see cref="HeatmapAsync"/> with one acquisition per place (rscapret_heatmap_newest, migrations/0022): the newest
    /// acquired before <paramref name="acquiredBefore"/> (every acquisition counts when null).
    /// </summary>
    public async Task<HeatmapResult> HeatmapNewestPerPlaceAsync(float[] query, Geometry? area, long? sceneId, int? modelId, int maxTiles,
        DateTimeOffset? acquiredBefore, CancellationToken ct = default)
    {
        if (query.Length != SharedSpace.Dimensions) throw new ArgumentException($"The query vector has {query.Length} dimensions; {SharedSpace.Dimensions} expected.", nameof(query));
        await using var cmd = ReadSource.CreateCommand("""
            SELECT tile_id, scene_id, footprint, score
              FROM rscapret_heatmap_newest(query => $1, area => $2, scene => $3, model => $4, max_tiles => $5, acquired_before => $6)
            """);
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        cmd.Parameters.Add(new() { Value = (object?)area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)sceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = (object?)modelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = maxTiles });
        cmd.Parameters.Add(new() { Value = (object?)acquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var tiles = new List<TileScore>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                tiles.Add(new TileScore(r.GetInt64(0), r.GetInt64(1), r.GetFieldValue<Polygon>(2), r.GetDouble(3)));
        return tiles.Count > maxTiles ? new HeatmapResult([], maxTiles) : new HeatmapResult(tiles, null);
    }
}
