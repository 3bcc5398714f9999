using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;

namespace RsCapRet.Storage;

/// <summary>An archive path and the version it shows (migrations/0018): what `scenes list` prints a row of.</summary>
public sealed record SceneListing(long? Id, string Path, string Status, int? Version, DateTimeOffset? AcquiredAt, int Tiles,
    int SkippedTiles, double? Coverage, string Model, int ModelId, IReadOnlyList<string> Warnings, bool OutOfRange,
    string? Error, string? Decision, long? PendingId, string? PendingStatus, DateTimeOffset UpdatedAt, DateTimeOffset? RemovedAt,
    double[]? Bbox, long SizeBytes, string? ContentSha256, double? TileGsd, string? Plan)
{
    /// <summary>
    /// What <see cref="Coverage"/> says, decided here once for every reader (CLI, API, map): "measured"; "no_valid_pixels"
    /// (an empty scene without it: ingestion measures coverage over valid pixels, and it had none); or "not_measured"
    /// (a version ingested before coverage was recorded).
    /// </summary>
    public string CoverageState => Coverage is not null ? "measured" : Status == "empty" ? "no_valid_pixels" : "not_measured";
}

/// <summary>Filters of <see cref="CatalogStore.ListScenesAsync"/>.</summary>
public sealed record SceneListQuery
{
    /// <summary>Also removed paths and the versions no path shows (superseded, failed attempts).</summary>
    public bool All { get; init; }
    public string? Status { get; init; }
    public Geometry? Area { get; init; }
    public DateTimeOffset? AcquiredAfter { get; init; }
    public DateTimeOffset? AcquiredBefore { get; init; }
    public int? ModelId { get; init; }
    public int Limit { get; init; } = 1000;
    public int Offset { get; init; }

    public static readonly string[] Statuses = ["done", "empty", "pending", "ingesting", "failed", "removed", "superseded"];
}

/// <summary>What a path shows now: its current version (complete) and the version being ingested for it.</summary>
public sealed record ScenePathState(string Path, int ModelId, int Version, bool Removed, SceneRow? Current, SceneRow? Pending);

/// <summary>A current path of the catalogue under a folder, with what a scan compares a file against.</summary>
public sealed record CataloguedPath(string Path, long? SceneId, string? ContentSha256, string? PlanKey, long SizeBytes)
{
    /// <summary>The version being ingested (or last attempted) for the path: its content, plan, status and error.</summary>
    public (string Sha256, string PlanKey, SceneStatus Status, string? Error)? Attempt { get; init; }
}

/// <summary>What a scan saw of a file last time (migrations/0004): unchanged size and mtime mean unchanged bytes.</summary>
public sealed record KnownFile(long SizeBytes, DateTime ModifiedUtc, string ContentSha256)
{
    /// <summary>Whether the file on disk still has this size and mtime (PostgreSQL keeps the mtime to the microsecond).</summary>
    public bool Describes(FileInfo file)
    {
        var mtime = file.LastWriteTimeUtc;
        return file.Exists && file.Length == SizeBytes && new DateTime(mtime.Ticks - mtime.Ticks % 10, DateTimeKind.Utc) == ModifiedUtc;
    }
}

/// <summary>What <see cref="CatalogStore.PruneAsync"/> deleted.</summary>
public sealed record PruneResult(int Versions, int Paths, long Tiles, IReadOnlyList<long> SceneIds);

/// <summary>What <see cref="CatalogStore.DeleteScenePathsAsync"/> deleted.</summary>
public sealed record DeleteResult(IReadOnlyList<string> Paths, IReadOnlyList<long> SceneIds, long Tiles);

/// <summary>A model of the catalogue and its share of the archive's current paths.</summary>
public sealed record ModelShare(int Id, string Name, string Version, string? Directory, bool Active, int Paths, int TotalPaths,
    int Pending, int Failed, long Tiles);

public sealed partial class CatalogStore
{
    /// <summary>
    /// In the completing transaction: the claim's own path (unless removed meanwhile) and every path waiting on the
    /// version switch to it; the versions they showed before, and this one, are reconciled (migrations/0018).
    /// </summary>
    internal static async Task ShowCompletedVersionAsync(NpgsqlConnection conn, NpgsqlTransaction tx, SceneClaim claim, CancellationToken ct)
    {
        if (claim.Path is { } path)
        {
            await using var pending = new NpgsqlCommand("""
                INSERT INTO scene_paths (path, model_id, pending_scene_id) VALUES ($1, $2, $3)
                ON CONFLICT (path, model_id) DO UPDATE SET pending_scene_id = EXCLUDED.pending_scene_id, updated_at = now()
                 WHERE scene_paths.status = 'current'
                """, conn, tx);
            pending.Parameters.Add(new() { Value = path });
            pending.Parameters.Add(new() { Value = claim.ModelId });
            pending.Parameters.Add(new() { Value = claim.SceneId });
            await pending.ExecuteNonQueryAsync(ct);
        }
        var affected = new List<long> { claim.SceneId };
        await using (var show = new NpgsqlCommand("""
            WITH waiting AS (SELECT path, model_id, scene_id FROM scene_paths WHERE pending_scene_id = $1 FOR UPDATE)
            UPDATE scene_paths p
               SET scene_id = $1, pending_scene_id = NULL, status = 'current', removed_at = NULL, updated_at = now(),
                   version = p.version + CASE WHEN w.scene_id IS DISTINCT FROM $1 THEN 1 ELSE 0 END,
                   decision = CASE WHEN w.scene_id IS NULL THEN 'added' WHEN w.scene_id = $1 THEN 're-ingested'
                                   ELSE 'changed: version ' || (p.version + 1) || ' replaces scene ' || w.scene_id END
              FROM waiting w
             WHERE p.path = w.path AND p.model_id = w.model_id
            RETURNING w.scene_id
            """, conn, tx))
        {
            show.Parameters.Add(new() { Value = claim.SceneId });
            await using var r = await show.ExecuteReaderAsync(ct);
            while (await r.ReadAsync(ct)) if (!r.IsDBNull(0)) affected.Add(r.GetInt64(0));
        }
        await ReconcileAsync(conn, tx, affected, ct);
    }

    private static async Task ReconcileAsync(NpgsqlConnection conn, NpgsqlTransaction tx, IEnumerable<long> sceneIds, CancellationToken ct)
    {
        var ids = sceneIds.Distinct().ToArray();
        if (ids.Length == 0) return;
        await using var cmd = new NpgsqlCommand("SELECT rscapret_reconcile_scenes($1)", conn, tx);
        cmd.Parameters.Add(new() { Value = ids });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Runs <paramref name="work"/> in one transaction on the primary.</summary>
    private async Task<T> InTransactionAsync<T>(Func<NpgsqlConnection, NpgsqlTransaction, Task<T>> work, CancellationToken ct)
    {
        await using var conn = await DataSource.OpenConnectionAsync(ct);
        await using var tx = await conn.BeginTransactionAsync(ct);
        var result = await work(conn, tx);
        await tx.CommitAsync(ct);
        return result;
    }

    /// <summary>The path's row for this model: the version it shows and the one being ingested for it; null when unknown.</summary>
    public async Task<ScenePathState?> GetScenePathAsync(string path, int modelId, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand($"""
            SELECT p.version, p.status = 'removed', {Prefixed("c")}, {Prefixed("q")}
              FROM scene_paths p
              LEFT JOIN scenes c ON c.id = p.scene_id
              LEFT JOIN scenes q ON q.id = p.pending_scene_id
             WHERE p.path = $1 AND p.model_id = $2
            """);
        cmd.Parameters.Add(new() { Value = path });
        cmd.Parameters.Add(new() { Value = modelId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        if (!await r.ReadAsync(ct)) return null;
        var columns = SceneRowColumns.Split(',').Length;
        return new ScenePathState(path, modelId, r.GetInt32(0), r.GetBoolean(1),
            r.IsDBNull(2) ? null : ReadSceneRow(r, 2), r.IsDBNull(2 + columns) ? null : ReadSceneRow(r, 2 + columns));
    }

    private static string Prefixed(string alias) => string.Join(", ", SceneRowColumns.Split(',').Select(c => $"{alias}.{c.Trim()}"));

    /// <summary>Records that <paramref name="sceneId"/> is being ingested for the path (it switches when that completes).</summary>
    public async Task MarkPendingAsync(string path, int modelId, long sceneId, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            INSERT INTO scene_paths (path, model_id, pending_scene_id) VALUES ($1, $2, $3)
            ON CONFLICT (path, model_id) DO UPDATE
               SET pending_scene_id = EXCLUDED.pending_scene_id, status = 'current', removed_at = NULL, updated_at = now()
            """);
        cmd.Parameters.Add(new() { Value = path });
        cmd.Parameters.Add(new() { Value = modelId });
        cmd.Parameters.Add(new() { Value = sceneId });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Makes a complete version current at <paramref name="path"/> without model work (the same bytes are indexed
    /// already: a copy, a file restored, a plan asked for again), in one transaction with the version it replaces.
    /// Returns the version the path showed before (null for a new path).
    /// </summary>
    public Task<long?> ShowVersionAsync(string path, int modelId, long sceneId, string decision, CancellationToken ct = default) =>
        InTransactionAsync(async (conn, tx) =>
        {
            long? before = null;
            await using (var cmd = new NpgsqlCommand("""
                WITH old AS (SELECT scene_id FROM scene_paths WHERE path = $1 AND model_id = $2 FOR UPDATE)
                INSERT INTO scene_paths (path, model_id, scene_id, version, decision) VALUES ($1, $2, $3, 1, $4)
                ON CONFLICT (path, model_id) DO UPDATE
                   SET scene_id = $3, status = 'current', removed_at = NULL, updated_at = now(), decision = $4,
                       pending_scene_id = CASE WHEN scene_paths.pending_scene_id = $3 THEN NULL ELSE scene_paths.pending_scene_id END,
                       version = scene_paths.version + CASE WHEN scene_paths.scene_id IS DISTINCT FROM $3 THEN 1 ELSE 0 END
                RETURNING (SELECT scene_id FROM old)
                """, conn, tx))
            {
                cmd.Parameters.Add(new() { Value = path });
                cmd.Parameters.Add(new() { Value = modelId });
                cmd.Parameters.Add(new() { Value = sceneId });
                cmd.Parameters.Add(new() { Value = decision });
                if (await cmd.ExecuteScalarAsync(ct) is long old) before = old;
            }
            await using (var scene = new NpgsqlCommand("UPDATE scenes SET path = $2 WHERE id = $1 AND status IN ('superseded', 'removed')", conn, tx))
            {
                // A version shown again takes the path it is shown at (search results name it).
                scene.Parameters.Add(new() { Value = sceneId });
                scene.Parameters.Add(new() { Value = path });
                await scene.ExecuteNonQueryAsync(ct);
            }
            await ReconcileAsync(conn, tx, before is { } b ? [b, sceneId] : [sceneId], ct);
            return before;
        }, ct);

    /// <summary>Records a decision on a path without changing what it shows (unchanged, failed, skipped).</summary>
    public async Task NoteDecisionAsync(string path, int modelId, string decision, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("UPDATE scene_paths SET decision = $3, updated_at = now() WHERE path = $1 AND model_id = $2");
        cmd.Parameters.Add(new() { Value = path });
        cmd.Parameters.Add(new() { Value = modelId });
        cmd.Parameters.Add(new() { Value = decision });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>
    /// Paths gone from the archive: 'removed', out of search in the same transaction (their versions stay for
    /// `changes` until pruned, unless another current path shows them). Returns how many paths were removed.
    /// </summary>
    public Task<int> RemovePathsAsync(IReadOnlyList<string> paths, int modelId, string decision = "removed: gone from the archive",
        CancellationToken ct = default) =>
        InTransactionAsync(async (conn, tx) =>
        {
            if (paths.Count == 0) return 0;
            var affected = new List<long>();
            var count = 0;
            await using (var cmd = new NpgsqlCommand("""
                UPDATE scene_paths SET status = 'removed', removed_at = now(), updated_at = now(), pending_scene_id = NULL, decision = $3
                 WHERE path = ANY($1) AND model_id = $2 AND status = 'current'
                RETURNING scene_id
                """, conn, tx))
            {
                cmd.Parameters.Add(new() { Value = paths.ToArray() });
                cmd.Parameters.Add(new() { Value = modelId });
                cmd.Parameters.Add(new() { Value = decision });
                await using var r = await cmd.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) { count++; if (!r.IsDBNull(0)) affected.Add(r.GetInt64(0)); }
            }
            await ReconcileAsync(conn, tx, affected, ct);
            return count;
        }, ct);

    /// <summary>
    /// A file renamed or moved with the same bytes: the path row (its version, so its tiles and their ids) moves to
    /// <paramref name="to"/>; no model work. False when <paramref name="from"/> has no current row.
    /// </summary>
    public Task<bool> MovePathAsync(string from, string to, int modelId, CancellationToken ct = default) =>
        InTransactionAsync(async (conn, tx) =>
        {
            await using (var clear = new NpgsqlCommand("DELETE FROM scene_paths WHERE path = $1 AND model_id = $2 AND status = 'removed'", conn, tx))
            {
                clear.Parameters.Add(new() { Value = to });
                clear.Parameters.Add(new() { Value = modelId });
                await clear.ExecuteNonQueryAsync(ct);
            }
            await using (var move = new NpgsqlCommand("""
                UPDATE scene_paths SET path = $2, updated_at = now(), decision = 'moved from ' || $1
                 WHERE path = $1 AND model_id = $3 AND status = 'current'
                   AND NOT EXISTS (SELECT 1 FROM scene_paths o WHERE o.path = $2 AND o.model_id = $3)
                """, conn, tx))
            {
                move.Parameters.Add(new() { Value = from });
                move.Parameters.Add(new() { Value = to });
                move.Parameters.Add(new() { Value = modelId });
                if (await move.ExecuteNonQueryAsync(ct) == 0) return false;
            }
            await using (var scene = new NpgsqlCommand("UPDATE scenes SET path = $2 WHERE path = $1 AND model_id = $3", conn, tx))
            {
                scene.Parameters.Add(new() { Value = from });
                scene.Parameters.Add(new() { Value = to });
                scene.Parameters.Add(new() { Value = modelId });
                await scene.ExecuteNonQueryAsync(ct);
            }
            await using (var known = new NpgsqlCommand("""
                INSERT INTO archive_files (path, size_bytes, modified_at, content_sha256)
                SELECT $2, size_bytes, modified_at, content_sha256 FROM archive_files WHERE path = $1
                ON CONFLICT (path) DO NOTHING
                """, conn, tx))
            {
                known.Parameters.Add(new() { Value = from });
                known.Parameters.Add(new() { Value = to });
                await known.ExecuteNonQueryAsync(ct);
            }
            return true;
        }, ct);

    /// <summary>The current paths of this model under <paramref name="folder"/> (a prefix; every path when null).</summary>
    public async Task<IReadOnlyList<CataloguedPath>> CurrentPathsUnderAsync(string? folder, int modelId, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT p.path, p.scene_id, s.content_sha256, s.plan_key, COALESCE(s.size_bytes, q.size_bytes, 0),
                   -- An attempt whose holder's lease lapsed (the worker died) is no longer being ingested: 'pending'.
                   CASE WHEN q.status = 'ingesting' AND COALESCE(q.lease_expires_at, q.updated_at) < now() THEN 'pending' ELSE q.status END,
                   q.content_sha256, q.plan_key, q.error
              FROM scene_paths p
              LEFT JOIN scenes s ON s.id = p.scene_id
              LEFT JOIN scenes q ON q.id = p.pending_scene_id
             WHERE p.model_id = $1 AND p.status = 'current' AND ($2::text IS NULL OR p.path LIKE $2)
             ORDER BY p.path
            """);
        cmd.Parameters.Add(new() { Value = modelId });
        cmd.Parameters.Add(new() { Value = (object?)LikePrefix(folder) ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        var list = new List<CataloguedPath>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new CataloguedPath(r.GetString(0), r.IsDBNull(1) ? null : r.GetInt64(1), r.IsDBNull(2) ? null : r.GetString(2),
                r.IsDBNull(3) ? null : r.GetString(3), r.GetInt64(4))
            {
                Attempt = r.IsDBNull(5) ? null
                    : (r.GetString(6), r.GetString(7), Enum.Parse<SceneStatus>(r.GetString(5), ignoreCase: true), r.IsDBNull(8) ? null : r.GetString(8)),
            });
        return list;
    }

    private static string? LikePrefix(string? folder)
    {
        if (folder is null) return null;
        var escaped = folder.TrimEnd('/').Replace(@"\", @"\\").Replace("%", @"\%").Replace("_", @"\_");
        return escaped + "/%";
    }

    /// <summary>What scans have seen under a folder: path to size, mtime and SHA-256.</summary>
    public async Task<IReadOnlyDictionary<string, KnownFile>> KnownFilesUnderAsync(string folder, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("SELECT path, size_bytes, modified_at, content_sha256 FROM archive_files WHERE path LIKE $1");
        cmd.Parameters.Add(new() { Value = LikePrefix(folder)! });
        var known = new Dictionary<string, KnownFile>(StringComparer.Ordinal);
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) known[r.GetString(0)] = new KnownFile(r.GetInt64(1), r.GetDateTime(2), r.GetString(3));
        return known;
    }

    /// <summary>What a scan or an ingest last saw of the file at <paramref name="path"/>, or null.</summary>
    public async Task<KnownFile?> KnownFileAsync(string path, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("SELECT size_bytes, modified_at, content_sha256 FROM archive_files WHERE path = $1");
        cmd.Parameters.Add(new() { Value = path });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new KnownFile(r.GetInt64(0), r.GetDateTime(1), r.GetString(2)) : null;
    }

    public async Task RememberFileAsync(string path, KnownFile file, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            INSERT INTO archive_files (path, size_bytes, modified_at, content_sha256) VALUES ($1, $2, $3, $4)
            ON CONFLICT (path) DO UPDATE SET size_bytes = EXCLUDED.size_bytes, modified_at = EXCLUDED.modified_at,
                   content_sha256 = EXCLUDED.content_sha256, seen_at = now()
            """);
        cmd.Parameters.Add(new() { Value = path });
        cmd.Parameters.Add(new() { Value = file.SizeBytes });
        cmd.Parameters.Add(new() { Value = DateTime.SpecifyKind(file.ModifiedUtc, DateTimeKind.Utc) });
        cmd.Parameters.Add(new() { Value = file.ContentSha256 });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    // One row per archive path: the version it shows, else the one being ingested for it. With All, also the
    // versions no path shows (superseded, abandoned attempts) under the path they were ingested for.
    private const string ListingSql = """
        WITH rows AS (
            SELECT COALESCE(c.id, q.id) AS id, p.path,
                   CASE WHEN p.status = 'removed' THEN 'removed' WHEN c.id IS NOT NULL THEN c.status ELSE COALESCE(q.status, 'pending') END AS status,
                   CASE WHEN c.id IS NULL THEN NULL ELSE p.version END AS version,
                   COALESCE(c.acquired_at, q.acquired_at) AS acquired_at, COALESCE(c.tile_count, 0) AS tiles,
                   COALESCE(c.skipped_tiles, 0) AS skipped, c.coverage, p.model_id,
                   COALESCE(c.warning, q.warning) AS warning, COALESCE(c.out_of_range, q.out_of_range, false) AS out_of_range,
                   COALESCE(q.error, c.error) AS error, p.decision,
                   CASE WHEN c.id IS NOT NULL THEN q.id END AS pending_id, CASE WHEN c.id IS NOT NULL THEN q.status END AS pending_status,
                   p.updated_at, p.removed_at, COALESCE(c.footprint, q.footprint) AS footprint,
                   COALESCE(c.size_bytes, q.size_bytes, 0) AS size_bytes, COALESCE(c.content_sha256, q.content_sha256) AS sha,
                   COALESCE(c.tile_gsd, q.tile_gsd) AS tile_gsd, COALESCE(c.plan, q.plan)::text AS plan
              FROM scene_paths p
              LEFT JOIN scenes c ON c.id = p.scene_id
              LEFT JOIN scenes q ON q.id = p.pending_scene_id
            UNION ALL
            SELECT s.id, s.path, s.status, NULL, s.acquired_at, s.tile_count, s.skipped_tiles, s.coverage, s.model_id, s.warning,
                   s.out_of_range, s.error, NULL, NULL, NULL, s.updated_at, s.retired_at, s.footprint, s.size_bytes, s.content_sha256,
                   s.tile_gsd, s.plan::text
              FROM scenes s
             WHERE $1 AND NOT EXISTS (SELECT 1 FROM scene_paths p WHERE p.scene_id = s.id OR p.pending_scene_id = s.id)
        )
        SELECT r.id, r.path, r.status, r.version, r.acquired_at, r.tiles, r.skipped, r.coverage, m.name || ' ' || m.version, r.model_id,
               r.warning, r.out_of_range, r.error, r.decision, r.pending_id, r.pending_status, r.updated_at, r.removed_at,
               CASE WHEN r.footprint IS NULL THEN NULL ELSE ARRAY[ST_XMin(r.footprint), ST_YMin(r.footprint), ST_XMax(r.footprint), ST_YMax(r.footprint)] END,
               r.size_bytes, r.sha, r.tile_gsd, r.plan, count(*) OVER ()
          FROM rows r JOIN models m ON m.id = r.model_id
         WHERE ($1 OR r.status <> 'removed')
           AND ($2::text IS NULL OR r.status = $2)
           AND ($3::geometry IS NULL OR ST_Intersects(r.footprint, $3))
           AND ($4::timestamptz IS NULL OR r.acquired_at >= $4)
           AND ($5::timestamptz IS NULL OR r.acquired_at < $5)
           AND ($6::integer IS NULL OR r.model_id = $6)
           AND ($9::text IS NULL OR r.path = $9 OR r.id::text = $9)
         ORDER BY r.path, r.model_id, r.version DESC NULLS LAST, r.id DESC
         LIMIT $7 OFFSET $8
        """;

    /// <summary>Archive paths and their versions (see <see cref="SceneListQuery"/>), with how many match in all.</summary>
    public async Task<(IReadOnlyList<SceneListing> Scenes, long Total)> ListScenesAsync(SceneListQuery query, CancellationToken ct = default)
    {
        if (query.Limit is < 1 or > 10_000) throw new ArgumentOutOfRangeException(nameof(query), query.Limit, "limit must be 1..10000");
        if (query.Offset < 0) throw new ArgumentOutOfRangeException(nameof(query), query.Offset, "offset must be 0 or more");
        if (query.Status is { } st && !SceneListQuery.Statuses.Contains(st))
            throw new ArgumentException($"status must be one of {string.Join(", ", SceneListQuery.Statuses)}, got '{st}'");
        var all = query.All || query.Status is "removed" or "superseded";
        var (rows, total) = await ReadListingsAsync(all, query, null, ct);
        // The total is counted beside the page's rows; past the end there are none to count with.
        if (rows.Count == 0 && query.Offset > 0) (_, total) = await ReadListingsAsync(all, query with { Offset = 0, Limit = 1 }, null, ct);
        return (rows, total);
    }

    private async Task<(IReadOnlyList<SceneListing>, long)> ReadListingsAsync(bool all, SceneListQuery query, string? pathOrId, CancellationToken ct)
    {
        await using var cmd = ReadSource.CreateCommand(ListingSql);
        cmd.Parameters.Add(new() { Value = all });
        cmd.Parameters.Add(new() { Value = (object?)query.Status ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        cmd.Parameters.Add(new() { Value = (object?)query.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)query.AcquiredAfter?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)query.AcquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)query.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = query.Limit });
        cmd.Parameters.Add(new() { Value = query.Offset });
        cmd.Parameters.Add(new() { Value = (object?)pathOrId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        var list = new List<SceneListing>();
        long total = 0;
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
        {
            DateTimeOffset? Time(int i) => r.IsDBNull(i) ? null : new DateTimeOffset(r.GetDateTime(i), TimeSpan.Zero);
            string? Text(int i) => r.IsDBNull(i) ? null : r.GetString(i);
            var warnings = new List<string>();
            if (Text(10) is { } w) warnings.Add(w);
            var pendingStatus = Text(15);
            if (pendingStatus == "failed") warnings.Add($"a newer version (scene {r.GetInt64(14)}) failed: {Text(12)}; this path still shows version {r.GetInt32(3)}");
            else if (pendingStatus is "ingesting" or "pending") warnings.Add($"a newer version (scene {r.GetInt64(14)}) is being ingested; this one is shown until it completes");
            list.Add(new SceneListing(r.IsDBNull(0) ? null : r.GetInt64(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetInt32(3),
                Time(4), r.GetInt32(5), r.GetInt32(6), r.IsDBNull(7) ? null : r.GetDouble(7), r.GetString(8), r.GetInt32(9), warnings,
                r.GetBoolean(11), Text(12), Text(13), r.IsDBNull(14) ? null : r.GetInt64(14), pendingStatus, Time(16)!.Value, Time(17),
                r.IsDBNull(18) ? null : r.GetFieldValue<double[]>(18), r.GetInt64(19), Text(20), r.IsDBNull(21) ? null : r.GetDouble(21), Text(22)));
            total = r.GetInt64(23);
        }
        return (list, total);
    }

    /// <summary>
    /// The rows of a scene named by id (a version: the paths that show it, or the version itself when none does) or by
    /// archive path (every model's row of it), removed and superseded ones included.
    /// </summary>
    public async Task<IReadOnlyList<SceneListing>> FindScenesAsync(string idOrPath, CancellationToken ct = default)
    {
        var (rows, _) = await ReadListingsAsync(true, new SceneListQuery { Limit = 100 }, idOrPath, ct);
        return rows;
    }

    /// <summary>
    /// Deletes archive paths from the catalogue: their rows and every version that only they show or wait on (tiles
    /// go with them); a version another path shows stays. <paramref name="sceneId"/> deletes that version and the
    /// paths showing it. Returns what was deleted (the scene ids, so cached imagery can be dropped).
    /// </summary>
    public Task<DeleteResult> DeleteScenePathsAsync(IReadOnlyList<string> paths, long? sceneId, CancellationToken ct = default) =>
        InTransactionAsync(async (conn, tx) =>
        {
            var targets = paths.ToList();
            if (sceneId is { } id)
            {
                await using var showing = new NpgsqlCommand("SELECT DISTINCT path FROM scene_paths WHERE scene_id = $1 OR pending_scene_id = $1", conn, tx);
                showing.Parameters.Add(new() { Value = id });
                await using var r = await showing.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) targets.Add(r.GetString(0));
            }
            var deletedPaths = new List<string>();
            var candidates = new HashSet<long>();
            if (sceneId is { } one) candidates.Add(one);
            await using (var del = new NpgsqlCommand("DELETE FROM scene_paths WHERE path = ANY($1) RETURNING path, scene_id, pending_scene_id", conn, tx))
            {
                del.Parameters.Add(new() { Value = targets.Distinct().ToArray() });
                await using var r = await del.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct))
                {
                    deletedPaths.Add(r.GetString(0));
                    if (!r.IsDBNull(1)) candidates.Add(r.GetInt64(1));
                    if (!r.IsDBNull(2)) candidates.Add(r.GetInt64(2));
                }
            }
            // Earlier versions ingested for these paths that no path shows any more.
            await using (var history = new NpgsqlCommand("SELECT id FROM scenes WHERE path = ANY($1)", conn, tx))
            {
                history.Parameters.Add(new() { Value = targets.Distinct().ToArray() });
                await using var r = await history.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) candidates.Add(r.GetInt64(0));
            }
            var (ids, tiles) = await DeleteUnshownVersionsAsync(conn, tx, candidates.ToArray(), sceneId, ct);
            return new DeleteResult(deletedPaths.Distinct().ToList(), ids, tiles);
        }, ct);

    /// <summary>Deletes those of <paramref name="candidates"/> no path shows or waits on (and <paramref name="force"/> regardless).</summary>
    private static async Task<(IReadOnlyList<long> Ids, long Tiles)> DeleteUnshownVersionsAsync(NpgsqlConnection conn, NpgsqlTransaction tx,
        long[] candidates, long? force, CancellationToken ct)
    {
        if (candidates.Length == 0) return ([], 0);
        await using var del = new NpgsqlCommand("""
            DELETE FROM scenes s
             WHERE s.id = ANY($1)
               AND (s.id = $2 OR NOT EXISTS (SELECT 1 FROM scene_paths p WHERE p.scene_id = s.id OR p.pending_scene_id = s.id))
               AND (s.status <> 'ingesting' OR s.lease_expires_at < now() OR s.id = $2)
            RETURNING s.id, s.tile_count
            """, conn, tx);
        del.Parameters.Add(new() { Value = candidates });
        del.Parameters.Add(new() { Value = (object?)force ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        var ids = new List<long>();
        long tiles = 0;
        await using var r = await del.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct)) { ids.Add(r.GetInt64(0)); tiles += r.GetInt32(1); }
        return (ids, tiles);
    }

    /// <summary>
    /// Deletes what no longer serves the archive: superseded and removed versions retired before
    /// <paramref name="retiredBefore"/>, removed paths (and their versions) removed before it, failed versions no
    /// path waits on and paths whose only attempt failed, last tried before it.
    /// </summary>
    public Task<PruneResult> PruneAsync(DateTimeOffset retiredBefore, CancellationToken ct = default) =>
        InTransactionAsync(async (conn, tx) =>
        {
            int paths;
            var candidates = new List<long>();
            await using (var del = new NpgsqlCommand("""
                DELETE FROM scene_paths p
                 WHERE (p.status = 'removed' AND p.removed_at < $1)
                    OR (p.scene_id IS NULL AND EXISTS (SELECT 1 FROM scenes q WHERE q.id = p.pending_scene_id AND q.status = 'failed' AND q.updated_at < $1))
                    OR (p.scene_id IS NULL AND p.pending_scene_id IS NULL AND p.updated_at < $1)
                RETURNING p.scene_id, p.pending_scene_id
                """, conn, tx))
            {
                del.Parameters.Add(new() { Value = retiredBefore.UtcDateTime });
                await using var r = await del.ExecuteReaderAsync(ct);
                paths = 0;
                while (await r.ReadAsync(ct))
                {
                    paths++;
                    if (!r.IsDBNull(0)) candidates.Add(r.GetInt64(0));
                    if (!r.IsDBNull(1)) candidates.Add(r.GetInt64(1));
                }
            }
            await using (var old = new NpgsqlCommand("""
                UPDATE scene_paths SET pending_scene_id = NULL
                 WHERE pending_scene_id IN (SELECT id FROM scenes WHERE status = 'failed' AND updated_at < $1) AND scene_id IS NOT NULL
                """, conn, tx))
            {
                // A path that still shows a complete version forgets an old failed attempt at a newer one.
                old.Parameters.Add(new() { Value = retiredBefore.UtcDateTime });
                await old.ExecuteNonQueryAsync(ct);
            }
            await using (var sel = new NpgsqlCommand("""
                SELECT id FROM scenes
                 WHERE (status IN ('superseded', 'removed') AND COALESCE(retired_at, updated_at) < $1)
                    OR (status IN ('failed', 'pending') AND updated_at < $1)
                """, conn, tx))
            {
                sel.Parameters.Add(new() { Value = retiredBefore.UtcDateTime });
                await using var r = await sel.ExecuteReaderAsync(ct);
                while (await r.ReadAsync(ct)) candidates.Add(r.GetInt64(0));
            }
            await ReconcileAsync(conn, tx, candidates, ct);
            var (ids, tiles) = await DeleteUnshownVersionsAsync(conn, tx, candidates.Distinct().ToArray(), null, ct);
            return new PruneResult(ids.Count, paths, tiles, ids);
        }, ct);

    /// <summary>Current paths whose newest attempt failed, with the plan it was made with (for `scenes retry`).</summary>
    public async Task<IReadOnlyList<(string Path, int ModelId, string? ModelDirectory, string? PlanJson, string? Error)>> FailedPathsAsync(CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT p.path, p.model_id, m.directory, q.plan::text, q.error
              FROM scene_paths p JOIN scenes q ON q.id = p.pending_scene_id JOIN models m ON m.id = p.model_id
             WHERE p.status = 'current' AND q.status = 'failed'
             ORDER BY p.path
            """);
        var list = new List<(string, int, string?, string?, string?)>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add((r.GetString(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4)));
        return list;
    }

    /// <summary>Records where a registered model's folder is, so other processes can load it when it is activated.</summary>
    public async Task RecordModelDirectoryAsync(int modelId, string directory, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("UPDATE models SET directory = $2 WHERE id = $1 AND directory IS DISTINCT FROM $2");
        cmd.Parameters.Add(new() { Value = modelId });
        cmd.Parameters.Add(new() { Value = directory });
        await cmd.ExecuteNonQueryAsync(ct);
    }

    /// <summary>Every model with its share of the archive's current paths.</summary>
    public async Task<IReadOnlyList<ModelShare>> ModelSharesAsync(CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("""
            WITH active AS (SELECT id FROM models WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1),
                 archive AS (SELECT count(DISTINCT path) AS n FROM scene_paths WHERE status = 'current')
            SELECT m.id, m.name, m.version, m.directory, m.id IN (SELECT id FROM active),
                   count(p.path) FILTER (WHERE p.scene_id IS NOT NULL)::int, (SELECT n FROM archive)::int,
                   count(p.path) FILTER (WHERE q.status IN ('pending', 'ingesting'))::int,
                   count(p.path) FILTER (WHERE q.status = 'failed')::int,
                   COALESCE(sum(c.tile_count), 0)::bigint
              FROM models m
              LEFT JOIN scene_paths p ON p.model_id = m.id AND p.status = 'current'
              LEFT JOIN scenes c ON c.id = p.scene_id
              LEFT JOIN scenes q ON q.id = p.pending_scene_id
             GROUP BY m.id ORDER BY m.id
            """);
        var list = new List<ModelShare>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        while (await r.ReadAsync(ct))
            list.Add(new ModelShare(r.GetInt32(0), r.GetString(1), r.GetString(2), r.IsDBNull(3) ? null : r.GetString(3), r.GetBoolean(4),
                r.GetInt32(5), r.GetInt32(6), r.GetInt32(7), r.GetInt32(8), r.GetInt64(9)));
        return list;
    }

    /// <summary>Makes a model the one searches use everywhere (API, CLI, map); false when no model has that id.</summary>
    public async Task<bool> ActivateModelAsync(int modelId, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("UPDATE models SET activated_at = clock_timestamp() WHERE id = $1");
        cmd.Parameters.Add(new() { Value = modelId });
        return await cmd.ExecuteNonQueryAsync(ct) > 0;
    }

    /// <summary>The activated model (id and folder), or null when none was activated.</summary>
    public async Task<(int Id, string? Directory)?> ActiveModelAsync(CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("SELECT id, directory FROM models WHERE activated_at IS NOT NULL ORDER BY activated_at DESC LIMIT 1");
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? (r.GetInt32(0), r.IsDBNull(1) ? null : r.GetString(1)) : null;
    }
}
