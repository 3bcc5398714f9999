using System.Globalization;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// Managing scenes by id or archive path (`rscapret scenes ...`, /api/scenes): a scene named by a number is a version
/// id; anything else is an archive path, taken relative to the caller's directory. Deleting a scene also drops the
/// cached map tiles that drew it; its thumbnails are rendered per request from stored tiles and go with them.
/// </summary>
public static class SceneManagement
{
    /// <summary>A version id, or null when <paramref name="idOrPath"/> names a path.</summary>
    public static long? IdOf(string idOrPath) =>
        long.TryParse(idOrPath, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0 ? id : null;

    /// <summary>The key rows are found by: the id as text, or the full path.</summary>
    public static string KeyOf(string idOrPath) =>
        IdOf(idOrPath) is { } id ? id.ToString(CultureInfo.InvariantCulture) : Path.GetFullPath(idOrPath);

    public static Task<IReadOnlyList<SceneListing>> FindAsync(CatalogStore store, string idOrPath, CancellationToken ct = default) =>
        store.FindScenesAsync(KeyOf(idOrPath), ct);

    /// <summary>Deletes the scene and its tiles (see <see cref="CatalogStore.DeleteScenePathsAsync"/>) and the cached map tiles showing it.</summary>
    public static async Task<(DeleteResult Deleted, int CachedTiles)> DeleteAsync(CatalogStore store, string idOrPath, TileDiskCache? cache,
        CancellationToken ct = default)
    {
        var id = IdOf(idOrPath);
        var deleted = await store.DeleteScenePathsAsync(id is null ? [Path.GetFullPath(idOrPath)] : [], id, ct);
        var cached = cache?.RemoveScenes(deleted.SceneIds.ToHashSet()) ?? 0;
        return (deleted, cached);
    }

    /// <summary>Prunes removed and superseded versions and old failures, and the cached map tiles that drew them.</summary>
    public static async Task<(PruneResult Pruned, int CachedTiles)> PruneAsync(CatalogStore store, TimeSpan olderThan, TileDiskCache? cache,
        CancellationToken ct = default)
    {
        var pruned = await store.PruneAsync(DateTimeOffset.UtcNow - olderThan, ct);
        return (pruned, cache?.RemoveScenes(pruned.SceneIds.ToHashSet()) ?? 0);
    }
}

/// <summary>A scene row as JSON, the same for `scenes list --format json` and GET /api/scenes.</summary>
public static class SceneJson
{
    public static System.Text.Json.Nodes.JsonObject ToJson(SceneListing s, Func<string, string>? displayPath = null) => new()
    {
        ["id"] = s.Id,
        ["path"] = displayPath is null ? s.Path : displayPath(s.Path),
        ["status"] = s.Status,
        ["version"] = s.Version,
        ["acquired_at"] = s.AcquiredAt?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        ["tiles"] = s.Tiles,
        ["skipped_tiles"] = s.SkippedTiles,
        ["coverage"] = s.Coverage,
        ["coverage_state"] = s.CoverageState,
        ["model"] = s.Model,
        ["model_id"] = s.ModelId,
        ["warnings"] = new System.Text.Json.Nodes.JsonArray(s.Warnings.Select(w => (System.Text.Json.Nodes.JsonNode?)w).ToArray()),
        ["out_of_range"] = s.OutOfRange,
        ["error"] = s.Error,
        ["decision"] = s.Decision,
        ["pending_id"] = s.PendingId,
        ["pending_status"] = s.PendingStatus,
        ["updated_at"] = s.UpdatedAt.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        ["removed_at"] = s.RemovedAt?.UtcDateTime.ToString("O", CultureInfo.InvariantCulture),
        ["bbox"] = s.Bbox is { } b ? new System.Text.Json.Nodes.JsonArray(b.Select(v => (System.Text.Json.Nodes.JsonNode?)v).ToArray()) : null,
        ["size_bytes"] = s.SizeBytes,
        ["sha256"] = s.ContentSha256,
        ["tile_gsd"] = s.TileGsd,
    };
}
