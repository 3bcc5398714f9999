using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>A tile's similarity to a query (1 = same direction) for the heat map.</summary>
public sealed record TileScore(long TileId, long SceneId, Polygon Footprint, double Score);

/// <summary>The tiles of an area or a scene with their scores, or <see cref="MoreThan"/> when the area held more than allowed.</summary>
public sealed record HeatmapResult(IReadOnlyList<TileScore> Tiles, int? MoreThan);

public sealed partial class CatalogStore
{
    /// <summary>
    /// Every tile of <paramref name="area"/> (lon/lat) or of <paramref name="sceneId"/> scored against
    /// <paramref name="query"/>, in one call of rscapret_heatmap (migrations/0015); at most <paramref name="maxTiles"/>:
    /// beyond that no tiles are returned and <see cref="HeatmapResult.MoreThan"/> says so.
    /// </summary>
    public async Task<HeatmapResult> HeatmapAsync(float[] query, Geometry? area, long? sceneId, int? modelId, int maxTiles, CancellationToken ct = default)
    {
        if (query.Length != SharedSpace.Dimensions) throw new ArgumentException($"The query vector has {query.Length} dimensions; {SharedSpace.Dimensions} expected.", nameof(query));
        await using var cmd = ReadSource.CreateCommand("""
            SELECT tile_id, scene_id, footprint, score
              FROM rscapret_heatmap(query => $1, area => $2, scene => $3, model => $4, max_tiles => $5)
            """);
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        cmd.Parameters.Add(new() { Value = (object?)area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)sceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = (object?)modelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = maxTiles });
        var tiles = new List<TileScore>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                tiles.Add(new TileScore(r.GetInt64(0), r.GetInt64(1), r.GetFieldValue<Polygon>(2), r.GetDouble(3)));
        return tiles.Count > maxTiles ? new HeatmapResult([], maxTiles) : new HeatmapResult(tiles, null);
    }

    /// <summary>A stored tile's image vector and the model that made it; null for an unknown tile.</summary>
    public async Task<(int ModelId, float[] Vector)?> GetTileVectorAsync(long tileId, CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("SELECT model_id, embedding FROM tiles WHERE id = $1");
        cmd.Parameters.Add(new() { Value = tileId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt32(0), r.GetFieldValue<Vector>(1).ToArray()) : null;
    }
}
