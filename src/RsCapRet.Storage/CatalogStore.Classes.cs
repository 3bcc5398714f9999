using NetTopologySuite.Geometries;
using Npgsql;
using Pgvector;

namespace RsCapRet.Storage;

/// <summary>
/// One tile's best label among the prompts: its 0-based index, the cosine similarity to it, and the runner-up's
/// similarity (null with a single prompt). <see cref="Margin"/> says how clear the choice was.
/// </summary>
public sealed record TileClass(long TileId, int GridRow, int GridCol, Polygon? Footprint, Polygon FootprintNative,
    int ClassIndex, double Score, double? RunnerUp)
{
    public double? Margin => RunnerUp is { } r ? Score - r : null;
}

/// <summary>A completed scene's tiles labelled, with what a map of them needs: the scene's CRS and grid size.</summary>
public sealed record SceneClasses(SceneRow Scene, string? CrsWkt, int? CrsEpsg, IReadOnlyList<TileClass> Tiles);

public sealed partial class CatalogStore
{
    /// <summary>
    /// Every tile of a scene scored against <paramref name="prompts"/> (unit vectors, one per label) through the
    /// rscapret_scene_classes SQL function (migrations/0014): the stored vectors only, no model run.
    /// </summary>
    public async Task<SceneClasses> SceneClassesAsync(SceneRow scene, IReadOnlyList<float[]> prompts, CancellationToken ct = default)
    {
        string? wkt = null;
        int? epsg = null;
        await using (var meta = ReadSource.CreateCommand("SELECT crs_wkt, crs_epsg FROM scenes WHERE id = $1"))
        {
            meta.Parameters.Add(new() { Value = scene.Id });
            await using var r = await meta.ExecuteReaderAsync(ct);
            if (await r.ReadAsync(ct))
            {
                wkt = r.IsDBNull(0) ? null : r.GetString(0);
                epsg = r.IsDBNull(1) ? null : r.GetInt32(1);
            }
        }
        await using var cmd = ReadSource.CreateCommand("""
            SELECT tile_id, grid_row, grid_col, footprint, footprint_native, class_index, score, runner_up
              FROM rscapret_scene_classes($1, $2)
            """);
        cmd.Parameters.Add(new() { Value = scene.Id });
        cmd.Parameters.Add(new() { Value = prompts.Select(p => new Vector(p)).ToArray() });
        var tiles = new List<TileClass>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct))
                tiles.Add(new TileClass(r.GetInt64(0), r.GetInt32(1), r.GetInt32(2),
                    r.IsDBNull(3) ? null : r.GetFieldValue<Polygon>(3), r.GetFieldValue<Polygon>(4),
                    r.GetInt32(5), r.GetDouble(6), r.IsDBNull(7) ? null : r.GetDouble(7)));
        return new SceneClasses(scene, wkt, epsg, tiles);
    }
}
