using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>
/// What a change query compares: two scenes, or every completed scene of an area acquired in one time range against
/// those acquired in a later one (<see cref="Area"/> required then). <see cref="Toward"/> ranks by movement toward a
/// query vector instead of by distance.
/// </summary>
public sealed record ChangeRequest(long? BeforeScene, long? AfterScene, Geometry? Area, TimeRange? BeforeRange, TimeRange? AfterRange,
    int K = 20, double MinIou = 0.5, int? ModelId = null, float[]? Toward = null)
{
    public bool BySceneIds => BeforeScene is not null;
}

/// <summary>A half-open time range [From, To); either end may be open.</summary>
public sealed record TimeRange(DateTimeOffset? From, DateTimeOffset? To)
{
    public override string ToString() =>
        $"{From?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) ?? ""}..{To?.ToString("yyyy-MM-dd", System.Globalization.CultureInfo.InvariantCulture) ?? ""}";
}

/// <summary>
/// One pair of tiles over the same ground: cosine distance 0 = unchanged. With a toward vector,
/// <see cref="AfterTowardDistance"/> is the after tile's own cosine distance to it (whether the after tile shows the
/// text at all, apart from how far it moved toward it).
/// </summary>
public sealed record TileChange(long BeforeTile, long AfterTile, long BeforeScene, long AfterScene, string? BeforeCaption,
    string? AfterCaption, double Distance, double? TowardGain, double Iou, Geometry? Overlap, DateTimeOffset? BeforeAcquired,
    DateTimeOffset? AfterAcquired, double? AfterTowardDistance = null);

/// <summary>The ranked pairs, and why there are none when the inputs cannot pair (the SQL function's notices).</summary>
public sealed record ChangeResult(IReadOnlyList<TileChange> Changes, IReadOnlyList<string> Notes);

public sealed partial class CatalogStore
{
    /// <summary>
    /// Tiles of the before and after sets that cover the same ground, most changed first, through the
    /// rscapret_changes SQL functions (migrations/0012) that analysts call too.
    /// </summary>
    public async Task<ChangeResult> ChangesAsync(ChangeRequest request, CancellationToken ct = default)
    {
        if (request.Toward is { } t && t.Length != SharedSpace.Dimensions) throw new ArgumentException($"The toward vector has {t.Length} dimensions; {SharedSpace.Dimensions} expected.", nameof(request));
        await using var conn = await ReadSource.OpenConnectionAsync(ct);
        var notes = new List<string>();
        conn.Notice += (_, e) => notes.Add(e.Notice.MessageText);
        await using var cmd = conn.CreateCommand();
        var toward = new NpgsqlParameter { Value = request.Toward is { } v ? new Vector(v) : DBNull.Value, DataTypeName = "vector" };
        var area = new NpgsqlParameter { Value = (object?)request.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry };
        if (request.BySceneIds)
        {
            cmd.CommandText = """
                SELECT * FROM rscapret_changes(before_scene => $1, after_scene => $2, k => $3, min_iou => $4, area => $5, toward => $6)
                """;
            cmd.Parameters.Add(new() { Value = request.BeforeScene!.Value });
            cmd.Parameters.Add(new() { Value = request.AfterScene ?? throw new ArgumentException("an after scene is required with a before scene", nameof(request)) });
            cmd.Parameters.Add(new() { Value = request.K });
            cmd.Parameters.Add(new() { Value = request.MinIou });
            cmd.Parameters.Add(area);
            cmd.Parameters.Add(toward);
        }
        else
        {
            cmd.CommandText = """
                SELECT * FROM rscapret_changes(area => $1, before => $2, after => $3, k => $4, min_iou => $5, model => $6, toward => $7)
                """;
            cmd.Parameters.Add(area);
            cmd.Parameters.Add(new() { Value = Range(request.BeforeRange), NpgsqlDbType = NpgsqlDbType.TimestampTzRange });
            cmd.Parameters.Add(new() { Value = Range(request.AfterRange), NpgsqlDbType = NpgsqlDbType.TimestampTzRange });
            cmd.Parameters.Add(new() { Value = request.K });
            cmd.Parameters.Add(new() { Value = request.MinIou });
            cmd.Parameters.Add(new() { Value = (object?)request.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
            cmd.Parameters.Add(toward);
        }
        var rows = new List<TileChange>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
        {
            while (await r.ReadAsync(ct))
                rows.Add(new TileChange(r.GetInt64(0), r.GetInt64(1), r.GetInt64(2), r.GetInt64(3),
                    r.IsDBNull(4) ? null : r.GetString(4), r.IsDBNull(5) ? null : r.GetString(5), r.GetDouble(6),
                    r.IsDBNull(7) ? null : r.GetDouble(7), r.GetDouble(8), r.IsDBNull(9) ? null : r.GetFieldValue<Geometry>(9),
                    Time(r, 10), Time(r, 11)));
        }
        if (request.Toward is { } towardVector && rows.Count > 0)
            rows = await WithAfterTowardDistancesAsync(conn, rows, towardVector, ct);
        return new ChangeResult(rows, notes);
    }

    /// <summary>The after tiles' own distances to the toward vector (the pairs rank by gain, which does not say whether the after tile shows the text).</summary>
    private static async Task<List<TileChange>> WithAfterTowardDistancesAsync(NpgsqlConnection conn, List<TileChange> rows, float[] toward, CancellationToken ct)
    {
        await using var cmd = conn.CreateCommand();
        cmd.CommandText = "SELECT id, (embedding <=> $1)::double precision FROM tiles WHERE id = ANY($2)";
        cmd.Parameters.Add(new() { Value = new Vector(toward), DataTypeName = "vector" });
        cmd.Parameters.Add(new() { Value = rows.Select(c => c.AfterTile).Distinct().ToArray() });
        var distance = new Dictionary<long, double>();
        await using (var r = await cmd.ExecuteReaderAsync(ct))
            while (await r.ReadAsync(ct)) distance[r.GetInt64(0)] = r.GetDouble(1);
        return rows.Select(c => c with { AfterTowardDistance = distance.TryGetValue(c.AfterTile, out var d) ? d : null }).ToList();
    }

    private static NpgsqlRange<DateTime> Range(TimeRange? range) => range is null
        ? throw new ArgumentException("before and after time ranges are required without scene ids")
        : new NpgsqlRange<DateTime>(range.From?.UtcDateTime ?? default, true, range.From is null,
                                    range.To?.UtcDateTime ?? default, false, range.To is null);

    private static DateTimeOffset? Time(NpgsqlDataReader r, int i) =>
        r.IsDBNull(i) ? null : new DateTimeOffset(r.GetDateTime(i), TimeSpan.Zero);

    /// <summary>
    /// The completed scene a user names by id or by file path (the newest completed row for that path, of
    /// <paramref name="modelId"/> when given); null when there is none.
    /// </summary>
    public async Task<SceneRow?> FindCompletedSceneAsync(string idOrPath, int? modelId, CancellationToken ct = default)
    {
        if (long.TryParse(idOrPath, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var id))
            return await GetSceneAsync(id, ct);
        // A path means the archive path it was indexed under: the version it shows, or last showed when removed.
        var full = Path.GetFullPath(idOrPath);
        await using var cmd = DataSource.CreateCommand($"""
            SELECT {Prefixed("s")} FROM scene_paths p JOIN scenes s ON s.id = p.scene_id
             WHERE p.path = ANY($1) AND ($2::integer IS NULL OR p.model_id = $2)
             ORDER BY p.status = 'current' DESC, p.updated_at DESC LIMIT 1
            """);
        cmd.Parameters.Add(new() { Value = new[] { idOrPath, full } });
        cmd.Parameters.Add(new() { Value = (object?)modelId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Integer });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? ReadSceneRow(r, 0) : null;
    }
}
