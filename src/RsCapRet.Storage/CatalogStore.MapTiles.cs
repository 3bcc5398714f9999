using Npgsql;
using NpgsqlTypes;

namespace RsCapRet.Storage;

/// <summary>A completed scene whose footprint meets an area: what the map's imagery layer draws, oldest first.</summary>
public sealed record MapScene(long Id, SceneFile File, DateTimeOffset? AcquiredAt);

public sealed partial class CatalogStore
{
    /// <summary>
    /// The completed scenes whose footprints intersect the lon/lat box (of <paramref name="sceneId"/> only when given),
    /// oldest acquisition first so that newer imagery is drawn on top; one row per file (a file ingested by several
    /// models is drawn once). At most <paramref name="limit"/> scenes; only those acquired before
    /// <paramref name="acquiredBefore"/> when given (the map's "as of" date: its newest acquisition is drawn on top).
    /// </summary>
    public async Task<IReadOnlyList<MapScene>> ScenesForMapAsync(double west, double south, double east, double north, long? sceneId,
        int limit = 64, DateTimeOffset? acquiredBefore = null, CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("""
            SELECT id, path, content_sha256, size_bytes, acquired_at FROM (
                SELECT DISTINCT ON (content_sha256) id, path, content_sha256, size_bytes, acquired_at
                  FROM scenes
                 WHERE status = 'done' AND ST_Intersects(footprint, ST_MakeEnvelope($1, $2, $3, $4, 4326))
                   AND ($5::bigint IS NULL OR id = $5)
                   AND ($7::timestamptz IS NULL OR acquired_at < $7)
                 ORDER BY content_sha256, id DESC) s
             ORDER BY acquired_at NULLS FIRST, id
             LIMIT $6
            """);
        foreach (var v in new[] { west, south, east, north }) cmd.Parameters.Add(new() { Value = v });
        cmd.Parameters.Add(new() { Value = (object?)sceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = limit });
        cmd.Parameters.Add(new() { Value = (object?)acquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var scenes = new List<MapScene>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            scenes.Add(new MapScene(r.GetInt64(0), new SceneFile(r.GetString(1), r.GetString(2), r.GetInt64(3)),
                r.IsDBNull(4) ? null : new DateTimeOffset(r.GetDateTime(4), TimeSpan.Zero)));
        return scenes;
    }
}
