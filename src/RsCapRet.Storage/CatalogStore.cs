using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Core;

namespace RsCapRet.Storage;

/// <summary>
/// Reads and writes models, scenes and tiles. A scene's tiles are written in one transaction together with the
/// scene's final status, so a crash mid-scene leaves no tiles and a scene that does not look complete.
/// Searches and the other views of the catalogue (heat map, land use, changes, map tiles, a tile by id) read from
/// <see cref="ReadSource"/> — a streaming replica when one is configured (RSCAPRET_DB_READ), seeing the primary's
/// writes once it has replayed them — and everything else (models, claims, tiles, scene status) uses the primary.
/// </summary>
public sealed partial class CatalogStore(NpgsqlDataSource dataSource, NpgsqlDataSource? readSource = null)
{
    /// <summary>The primary: every write, and the reads that ingestion's bookkeeping depends on.</summary>
    public NpgsqlDataSource DataSource { get; } = dataSource;

    /// <summary>Where searches and catalogue views read: the replica, or the primary when there is none.</summary>
    public NpgsqlDataSource ReadSource { get; } = readSource ?? dataSource;

    /// <summary>Returns the id of the model, registering it on first use.</summary>
    public async Task<int> RegisterModelAsync(ModelIdentity model, CancellationToken ct = default)
    {
        if (model.SharedDim != SharedSpace.Dimensions)
            throw new ArgumentException($"Model '{model.Name}' has shared dimension {model.SharedDim}; the catalogue stores {SharedSpace.Dimensions}-d vectors.");
        await using var cmd = DataSource.CreateCommand("""
            INSERT INTO models (name, version, llm_backbone, vision_backbone, heads_sha256, shared_dim)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT (name, version, heads_sha256) DO UPDATE SET name = EXCLUDED.name
            RETURNING id
            """);
        cmd.Parameters.Add(new() { Value = model.Name });
        cmd.Parameters.Add(new() { Value = model.Version });
        cmd.Parameters.Add(new() { Value = model.LlmBackbone });
        cmd.Parameters.Add(new() { Value = model.VisionBackbone });
        cmd.Parameters.Add(new() { Value = model.HeadsSha256 });
        cmd.Parameters.Add(new() { Value = model.SharedDim });
        return (int)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// Claims a scene for ingestion by this worker for <paramref name="lease"/> (recorded on the row; renewals push it
    /// on). Returns null when this content was already ingested with this model (done/empty) or another worker holds
    /// it (status 'ingesting' and its lease has not lapsed). A failed, released or abandoned scene is claimed again,
    /// which makes jobs safe to retry. The claim records its holder (<see cref="ClaimHolder"/>): a scene whose holder
    /// ran on this machine and no longer exists is taken over at once; one not renewed for <see cref="StaleAfter"/>
    /// this run's lease is taken over too, whatever lease its holder set. Claiming an existing row never inserts, so
    /// runs waiting for a held scene consume no scene ids.
    /// </summary>
    public Task<SceneClaim?> TryClaimSceneAsync(SceneFile file, int modelId, TimeSpan lease, CancellationToken ct = default) =>
        TryClaimSceneAsync(file, modelId, ScenePlan.Unstated, 1, lease, ct);

    /// <summary>
    /// Claims version (<paramref name="file"/>'s content, model, <paramref name="plan"/>, <paramref name="revision"/>)
    /// for ingestion by this run; see the overload without a plan. Completing the claim makes the version current at
    /// <paramref name="file"/>'s path.
    /// </summary>
    public async Task<SceneClaim?> TryClaimSceneAsync(SceneFile file, int modelId, ScenePlan plan, int revision, TimeSpan lease,
        CancellationToken ct = default)
    {
        var me = ClaimHolder.Current;
        var stale = StaleAfter(lease);
        for (var attempt = 0; attempt < 8; attempt++)
        {
            // Look before inserting: an INSERT ... ON CONFLICT takes an identity value even when it conflicts, and a run
            // waiting for a held scene asks every second.
            long id;
            string status;
            Guid? token;
            bool lapsed;
            ClaimHolder? holder;
            await using (var look = DataSource.CreateCommand("""
                SELECT id, status, claim_token,
                       COALESCE(lease_expires_at, updated_at + $5) < now() OR updated_at < now() - $6,
                       claim_host, claim_namespace, claim_pid, claim_process_start
                  FROM scenes WHERE content_sha256 = $1 AND model_id = $2 AND plan_key = $3 AND revision = $4
                """))
            {
                look.Parameters.Add(new() { Value = file.ContentSha256 });
                look.Parameters.Add(new() { Value = modelId });
                look.Parameters.Add(new() { Value = plan.Key });
                look.Parameters.Add(new() { Value = revision });
                look.Parameters.Add(new() { Value = lease });
                look.Parameters.Add(new() { Value = stale });
                await using var r = await look.ExecuteReaderAsync(ct);
                if (!await r.ReadAsync(ct))
                {
                    await r.DisposeAsync();
                    if (await InsertClaimAsync(file, modelId, plan, revision, lease, me, ct) is { } inserted) return inserted;
                    continue;   // another run inserted it in between: look again
                }
                id = r.GetInt64(0);
                status = r.GetString(1);
                token = r.IsDBNull(2) ? null : r.GetGuid(2);
                lapsed = r.GetBoolean(3);
                holder = r.IsDBNull(4) || r.IsDBNull(6) ? null
                    : new ClaimHolder(r.GetString(4), r.IsDBNull(5) ? "" : r.GetString(5), r.GetInt32(6), r.IsDBNull(7) ? 0 : r.GetInt64(7));
            }
            // A failed or released scene; one whose holder stopped renewing its lease (or for longer than this run's own
            // lease); one whose holder ran on this machine and is gone (killed, crashed) — taken over at once.
            var deadHolder = status == "ingesting" && !lapsed && ClaimHolder.IsKnownGone(holder);
            if (!(status is "pending" or "failed" || (status == "ingesting" && (lapsed || deadHolder)))) return null;
            // A lapsed holder may still have its tile transaction open — a worker cut off from the network mid-scene,
            // whose COPY the server waits on for hours: end it first, so its uncommitted tiles cannot block this run's.
            if (status == "ingesting" && token is { } held) await EndTileWriterAsync(held, ct);
            await using var take = DataSource.CreateCommand("""
                UPDATE scenes
                   SET status = 'ingesting', path = $2, error = NULL, updated_at = now(), claim_token = gen_random_uuid(),
                       lease_expires_at = now() + $5, claim_host = $7, claim_namespace = $8, claim_pid = $9, claim_process_start = $10
                 WHERE id = $1 AND status = $3 AND claim_token IS NOT DISTINCT FROM $4
                   AND ($3 <> 'ingesting' OR $11 OR COALESCE(lease_expires_at, updated_at + $5) < now() OR updated_at < now() - $6)
                RETURNING id, claim_token
                """);
            take.Parameters.Add(new() { Value = id });
            take.Parameters.Add(new() { Value = file.Path });
            take.Parameters.Add(new() { Value = status });
            take.Parameters.Add(new() { Value = (object?)token ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Uuid });
            take.Parameters.Add(new() { Value = lease });
            take.Parameters.Add(new() { Value = stale });
            AddHolderParameters(take, me);
            take.Parameters.Add(new() { Value = deadHolder });
            await using var t = await take.ExecuteReaderAsync(ct);
            if (await t.ReadAsync(ct))
                return new SceneClaim(t.GetInt64(0), t.GetGuid(1), lease)
                {
                    Path = file.Path, ModelId = modelId,
                    TakenOverFrom = status != "ingesting" ? null : deadHolder ? $"{holder}, which is gone" : $"{holder?.ToString() ?? "a run"} whose lease lapsed",
                };
            // Changed between the look and the update (renewed, released, taken by another run): look again.
        }
        return null;
    }

    private async Task<SceneClaim?> InsertClaimAsync(SceneFile file, int modelId, ScenePlan plan, int revision, TimeSpan lease, ClaimHolder me,
        CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand("""
            INSERT INTO scenes (path, content_sha256, size_bytes, model_id, status, claim_token, lease_expires_at, plan_key, plan, revision,
                                claim_host, claim_namespace, claim_pid, claim_process_start)
            VALUES ($1, $2, $3, $4, 'ingesting', gen_random_uuid(), now() + $5, $6, $11::jsonb, $12, $7, $8, $9, $10)
            ON CONFLICT (content_sha256, model_id, plan_key, revision) DO NOTHING
            RETURNING id, claim_token
            """);
        cmd.Parameters.Add(new() { Value = file.Path });
        cmd.Parameters.Add(new() { Value = file.ContentSha256 });
        cmd.Parameters.Add(new() { Value = file.SizeBytes });
        cmd.Parameters.Add(new() { Value = modelId });
        cmd.Parameters.Add(new() { Value = lease });
        cmd.Parameters.Add(new() { Value = plan.Key });
        AddHolderParameters(cmd, me);
        cmd.Parameters.Add(new() { Value = plan.Json });
        cmd.Parameters.Add(new() { Value = revision });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new SceneClaim(r.GetInt64(0), r.GetGuid(1), lease) { Path = file.Path, ModelId = modelId } : null;
    }

    private static void AddHolderParameters(NpgsqlCommand cmd, ClaimHolder holder)
    {
        cmd.Parameters.Add(new() { Value = holder.Host });
        cmd.Parameters.Add(new() { Value = holder.Namespace });
        cmd.Parameters.Add(new() { Value = holder.Pid });
        cmd.Parameters.Add(new() { Value = holder.ProcessStart });
    }

    /// <summary>
    /// How long a claim may go without a renewal before a run with <paramref name="lease"/> takes it over whatever the
    /// holder's own lease: that lease, but never under <see cref="MinStaleAfter"/> (holders renew every
    /// <see cref="MaxRenewInterval"/> at most, so a live one is never that late).
    /// </summary>
    public static TimeSpan StaleAfter(TimeSpan lease) => lease > MinStaleAfter ? lease : MinStaleAfter;

    /// <summary>The longest a holder goes between renewals (<c>SceneClaimKeeper</c> renews every third of its lease, at most this).</summary>
    public static readonly TimeSpan MaxRenewInterval = TimeSpan.FromSeconds(10);
    public static readonly TimeSpan MinStaleAfter = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The advisory lock a claim's tile transaction holds (shared, so it blocks nothing) while it lasts: 64 bits of the
    /// claim token. It marks the transaction's server session in pg_locks for <see cref="EndTileWriterAsync"/>.
    /// </summary>
    public static long TileWriterLock(Guid claimToken) => BitConverter.ToInt64(claimToken.ToByteArray(), 0);

    /// <summary>
    /// Ends the server session of the tile transaction of claim <paramref name="claimToken"/>, if one is still open
    /// (waiting up to 5 s for it to go): its uncommitted tiles are rolled back and their locks released. Sessions of
    /// another role need privileges this one may lack; those are left to the server's own timeouts.
    /// </summary>
    private async Task EndTileWriterAsync(Guid claimToken, CancellationToken ct)
    {
        // pg_locks shows a bigint advisory key as its high (classid) and low (objid) 32 bits.
        var key = TileWriterLock(claimToken);
        await using var cmd = DataSource.CreateCommand("""
            SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000)) FROM pg_locks
             WHERE locktype = 'advisory' AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND pid <> pg_backend_pid()
            """);
        cmd.Parameters.Add(new() { Value = (long)(uint)(key >> 32) });
        cmd.Parameters.Add(new() { Value = (long)(uint)key });
        try { await cmd.ExecuteScalarAsync(ct); }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.InsufficientPrivilege) { }
    }

    /// <summary>
    /// Renews a claimed scene's lease (another <see cref="SceneClaim.Lease"/> from now) during a long ingestion;
    /// throws when the claim is no longer this worker's (taken over after its lease lapsed, or released).
    /// </summary>
    public async Task HeartbeatAsync(SceneClaim claim, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            UPDATE scenes SET updated_at = now(), lease_expires_at = now() + $3
             WHERE id = $1 AND claim_token = $2 AND status = 'ingesting'
            """);
        cmd.Parameters.Add(new() { Value = claim.SceneId });
        cmd.Parameters.Add(new() { Value = claim.Token });
        cmd.Parameters.Add(new() { Value = claim.Lease });
        if (await cmd.ExecuteNonQueryAsync(ct) == 0) throw new SceneLeaseLostException(claim.SceneId);
    }

    /// <summary>Whether <paramref name="claim"/> still holds its scene (read only: no lease renewed).</summary>
    public async Task<bool> ClaimHeldAsync(SceneClaim claim, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("SELECT EXISTS (SELECT 1 FROM scenes WHERE id = $1 AND claim_token = $2 AND status = 'ingesting')");
        cmd.Parameters.Add(new() { Value = claim.SceneId });
        cmd.Parameters.Add(new() { Value = claim.Token });
        return (bool)(await cmd.ExecuteScalarAsync(ct))!;
    }

    /// <summary>
    /// How long until the lease of a scene being ingested lapses (zero when it already has, and another run may take
    /// the scene over); null when the scene is not being ingested.
    /// </summary>
    /// <param name="lease">the asking run's lease: a claim not renewed for <see cref="StaleAfter"/> of it lapses for that run sooner</param>
    public async Task<TimeSpan?> LeaseLeftAsync(long sceneId, TimeSpan? lease = null, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            SELECT greatest(extract(epoch FROM least(lease_expires_at, updated_at + $2) - now()), 0)::double precision
              FROM scenes WHERE id = $1 AND status = 'ingesting' AND lease_expires_at IS NOT NULL
            """);
        cmd.Parameters.Add(new() { Value = sceneId });
        cmd.Parameters.Add(new() { Value = lease is { } l ? StaleAfter(l) : TimeSpan.FromDays(3650) });
        return await cmd.ExecuteScalarAsync(ct) is double seconds ? TimeSpan.FromSeconds(seconds) : null;
    }

    /// <summary>
    /// Replaces the scene's tiles (binary COPY) and marks it done (or empty when there are none), atomically.
    /// </summary>
    public async Task CompleteSceneAsync(SceneClaim claim, SceneMetadata meta, IReadOnlyList<TileRecord> tiles, int modelId,
        int skippedTiles, CancellationToken ct = default)
    {
        await using var writer = await BeginSceneTilesAsync(claim, modelId, ct);
        await writer.WriteAsync(tiles, ct);
        await writer.CompleteAsync(meta, skippedTiles, ct);
    }

    /// <summary>
    /// Opens one transaction for the scene's tiles: earlier tiles of the scene are deleted, new ones stream in by
    /// binary COPY batch after batch (memory stays bounded however large the scene), and
    /// <see cref="SceneTileWriter.CompleteAsync"/> marks the scene done in the same transaction. Disposing without
    /// completing rolls everything back, so a crash never leaves half a scene looking complete.
    /// </summary>
    public async Task<SceneTileWriter> BeginSceneTilesAsync(SceneClaim claim, int modelId, CancellationToken ct = default)
    {
        var conn = await DataSource.OpenConnectionAsync(ct);
        try
        {
            var tx = await conn.BeginTransactionAsync(ct);
            // Marked with the claim while the transaction lasts: a run taking the scene over ends it (EndTileWriterAsync).
            await using (var mark = new NpgsqlCommand("SELECT pg_advisory_xact_lock_shared($1)", conn, tx))
            {
                mark.Parameters.Add(new() { Value = TileWriterLock(claim.Token) });
                await mark.ExecuteNonQueryAsync(ct);
            }
            await using (var del = new NpgsqlCommand("DELETE FROM tiles WHERE scene_id = $1", conn, tx))
            {
                del.Parameters.Add(new() { Value = claim.SceneId });
                await del.ExecuteNonQueryAsync(ct);
            }
            var importer = await SceneTileWriter.BeginTilesCopyAsync(conn, ct);
            return new SceneTileWriter(conn, tx, importer, claim, modelId, this);
        }
        catch
        {
            await conn.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Records a scene's failure and releases its claim (its tiles, if any from an earlier run, stay untouched): the
    /// next run claims it at once, and this claim can no longer renew or commit. A claim that was taken over, or a
    /// scene no longer being ingested (completed meanwhile), changes nothing. Returns whether the failure was recorded.
    /// </summary>
    public async Task<bool> FailSceneAsync(SceneClaim claim, string error, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("""
            UPDATE scenes SET status = 'failed', error = $3, updated_at = now(), claim_token = NULL, lease_expires_at = NULL
             WHERE id = $1 AND claim_token = $2 AND status = 'ingesting'
            """);
        cmd.Parameters.Add(new() { Value = claim.SceneId });
        cmd.Parameters.Add(new() { Value = claim.Token });
        cmd.Parameters.Add(new() { Value = error });
        return await cmd.ExecuteNonQueryAsync(ct) > 0;
    }

    public Task<SceneRow?> GetSceneAsync(long sceneId, CancellationToken ct = default) =>
        ReadSceneAsync("id = $1", [sceneId], ct);

    /// <summary>The newest version of this content with this model, whatever its plan.</summary>
    public Task<SceneRow?> FindSceneAsync(string contentSha256, int modelId, CancellationToken ct = default) =>
        ReadSceneAsync("content_sha256 = $1 AND model_id = $2", [contentSha256, modelId], ct);

    /// <summary>The newest revision of the version (content, model, plan), or null.</summary>
    public Task<SceneRow?> FindVersionAsync(string contentSha256, int modelId, string planKey, CancellationToken ct = default) =>
        ReadSceneAsync("content_sha256 = $1 AND model_id = $2 AND plan_key = $3", [contentSha256, modelId, planKey], ct);

    private const string SceneRowColumns = "id, path, content_sha256, model_id, status, error, tile_count, skipped_tiles, plan_key, revision, size_bytes";

    private async Task<SceneRow?> ReadSceneAsync(string where, object[] args, CancellationToken ct)
    {
        await using var cmd = DataSource.CreateCommand(
            $"SELECT {SceneRowColumns} FROM scenes WHERE {where} ORDER BY revision DESC, id DESC LIMIT 1");
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? ReadSceneRow(r, 0) : null;
    }

    private static SceneRow ReadSceneRow(NpgsqlDataReader r, int at) =>
        new(r.GetInt64(at), r.GetString(at + 1), r.GetString(at + 2), r.GetInt32(at + 3),
            Enum.Parse<SceneStatus>(r.GetString(at + 4), ignoreCase: true), r.IsDBNull(at + 5) ? null : r.GetString(at + 5),
            r.GetInt32(at + 6), r.GetInt32(at + 7))
        { PlanKey = r.GetString(at + 8), Revision = r.GetInt32(at + 9), SizeBytes = r.GetInt64(at + 10) };

    /// <summary>
    /// The k tiles nearest to <paramref name="query"/> by cosine distance under <paramref name="filter"/>, through
    /// the rscapret_search SQL function (migrations/functions/20_search.sql) that analysts use too.
    /// </summary>
    public Task<IReadOnlyList<TileHit>> SearchAsync(float[] query, int k, SearchFilter? filter = null,
        CancellationToken ct = default) => SearchAsync(query, k, 0, filter, ct);

    /// <summary>
    /// Rows <paramref name="offset"/> + 1 to <paramref name="offset"/> + <paramref name="k"/> of the ranking (paging,
    /// issue 29): the function is asked for the first <paramref name="offset"/> + <paramref name="k"/> rows and the first
    /// <paramref name="offset"/> are skipped, so a page is exactly the same rows as that stretch of one longer search
    /// (the index's candidate list depends on the number of rows asked for; asking for the same number gives the same
    /// rows). The ranking is <see cref="MaxRankDepth"/> rows deep: offset + k at most 1,000.
    /// </summary>
    public async Task<IReadOnlyList<TileHit>> SearchAsync(float[] query, int k, int offset, SearchFilter? filter,
        CancellationToken ct = default)
    {
        filter ??= new SearchFilter();
        if (query.Length != SharedSpace.Dimensions) throw new ArgumentException($"The query vector has {query.Length} dimensions; {SharedSpace.Dimensions} expected.", nameof(query));
        if (k is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be between 1 and 1000.");
        CheckOffset(k, offset, MaxRankDepth);
        if (filter.NewestPerPlace) return await SearchNewestPerPlaceAsync(query, k, offset, filter, null, ct);
        await using var cmd = ReadSource.CreateCommand("""
            SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
                   h.footprint, h.caption, h.distance, h.acquired_at, s.out_of_range
              FROM rscapret_search(query => $1, k => $2, area => $3, near => $4, radius_m => $5,
                                   acquired_after => $6, acquired_before => $7, model => $8, scene => $9, exact => $10) h
              JOIN scenes s ON s.id = h.scene_id
             ORDER BY h.distance, h.tile_id
            """);
        cmd.Parameters.Add(new() { Value = new Vector(query) });
        AddFilterParameters(cmd, k + offset, filter, withModel: true);
        return await ReadHitsAsync(cmd, offset, ct);
    }

    /// <summary>How deep the ranking goes: offset + k at most (rscapret_search's k; 999 for rscapret_search_by_tile, which asks for one more).</summary>
    public const int MaxRankDepth = 1000;

    private static void CheckOffset(int k, int offset, int depth)
    {
        if (offset < 0) throw new ArgumentOutOfRangeException(nameof(offset), offset, "offset must not be negative.");
        if ((long)offset + k > depth)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"offset + k must be at most {depth} (the ranking is {depth} rows deep), got {(long)offset + k}.");
    }

    /// <summary>
    /// The k tiles that look most like tile <paramref name="tileId"/> (its stored image vector, its model), through
    /// rscapret_search_by_tile (migrations/functions/20_search.sql); the tile itself is left out. Null when no completed scene has that tile.
    /// </summary>
    public Task<IReadOnlyList<TileHit>?> SearchByTileAsync(long tileId, int k, SearchFilter? filter = null, CancellationToken ct = default) =>
        SearchByTileAsync(tileId, k, 0, filter, ct);

    /// <summary>A page of <see cref="SearchByTileAsync(long, int, SearchFilter?, CancellationToken)"/>'s ranking, as <see cref="SearchAsync(float[], int, int, SearchFilter?, CancellationToken)"/> pages (offset + k at most 999).</summary>
    public async Task<IReadOnlyList<TileHit>?> SearchByTileAsync(long tileId, int k, int offset, SearchFilter? filter, CancellationToken ct = default)
    {
        filter ??= new SearchFilter();
        if (k is < 1 or > 1000) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be between 1 and 1000.");
        CheckOffset(k, offset, MaxRankDepth - 1);
        if (filter.NewestPerPlace)
        {
            // The tile's own vector and model, the tile itself left out (as rscapret_search_by_tile does).
            if (await GetTileVectorAsync(tileId, ct) is not { } source || await GetTileAsync(tileId, ct) is null) return null;
            return await SearchNewestPerPlaceAsync(source.Vector, k, offset, filter with { ModelId = source.ModelId }, tileId, ct);
        }
        await using var cmd = ReadSource.CreateCommand("""
            SELECT h.tile_id, h.scene_id, h.scene_path, h.grid_row, h.grid_col, h.px_x, h.px_y, h.px_width, h.px_height,
                   h.footprint, h.caption, h.distance, h.acquired_at, s.out_of_range
              FROM rscapret_search_by_tile(tile => $1, k => $2, area => $3, near => $4, radius_m => $5,
                                           acquired_after => $6, acquired_before => $7, scene => $8, exact => $9) h
              JOIN scenes s ON s.id = h.scene_id
             ORDER BY h.distance, h.tile_id
            """);
        cmd.Parameters.Add(new() { Value = tileId });
        AddFilterParameters(cmd, k + offset, filter, withModel: false);
        try { return await ReadHitsAsync(cmd, offset, ct); }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.NoDataFound) { return null; }
    }

    private static void AddFilterParameters(NpgsqlCommand cmd, int k, SearchFilter filter, bool withModel)
    {
        cmd.Parameters.Add(new() { Value = k });
        cmd.Parameters.Add(new() { Value = (object?)filter.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)filter.Near ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)filter.RadiusMetres ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
        cmd.Parameters.Add(new() { Value = (object?)filter.AcquiredAfter?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)filter.AcquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        if (withModel) cmd.Parameters.Add(new() { Value = (object?)filter.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = (object?)filter.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = filter.Exact });
    }

    private static async Task<IReadOnlyList<TileHit>> ReadHitsAsync(NpgsqlCommand cmd, int skip, CancellationToken ct)
    {
        var hits = new List<TileHit>();
        await using var r = await cmd.ExecuteReaderAsync(ct);
        for (var row = 0; await r.ReadAsync(ct); row++)
            if (row >= skip) hits.Add(ReadHit(r));
        return hits;
    }

    /// <summary>One tile of a completed scene by id (distance 0), or null.</summary>
    public async Task<TileHit?> GetTileAsync(long tileId, CancellationToken ct = default)
    {
        await using var cmd = ReadSource.CreateCommand("""
            SELECT c.tile_id, c.scene_id, c.scene_path, c.grid_row, c.grid_col, c.px_x, c.px_y, c.px_width, c.px_height,
                   c.footprint, c.caption, 0::double precision, c.acquired_at, s.out_of_range
              FROM tile_catalog c JOIN scenes s ON s.id = c.scene_id WHERE c.tile_id = $1
            """);
        cmd.Parameters.Add(new() { Value = tileId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? ReadHit(r) : null;
    }

    /// <summary>The SHA-256 and size recorded for a scene's file when it was ingested; null for an unknown scene.</summary>
    public async Task<SceneFile?> GetSceneFileAsync(long sceneId, CancellationToken ct = default)
    {
        await using var cmd = DataSource.CreateCommand("SELECT path, content_sha256, size_bytes FROM scenes WHERE id = $1");
        cmd.Parameters.Add(new() { Value = sceneId });
        await using var r = await cmd.ExecuteReaderAsync(ct);
        return await r.ReadAsync(ct) ? new SceneFile(r.GetString(0), r.GetString(1), r.GetInt64(2)) : null;
    }

    /// <summary>A hit from the column order rscapret_search returns.</summary>
    private static TileHit ReadHit(NpgsqlDataReader r) =>
        new(r.GetInt64(0), r.GetInt64(1), r.GetString(2), r.GetInt32(3), r.GetInt32(4),
            r.GetInt32(5), r.GetInt32(6), r.GetInt32(7), r.GetInt32(8), r.IsDBNull(9) ? null : r.GetFieldValue<Polygon>(9),
            r.IsDBNull(10) ? null : r.GetString(10), r.GetDouble(11),
            r.IsDBNull(12) ? null : new DateTimeOffset(r.GetDateTime(12), TimeSpan.Zero), r.GetBoolean(13));
}

/// <summary>A scene's tiles being written in one transaction; see <see cref="CatalogStore.BeginSceneTilesAsync"/>.</summary>
public sealed class SceneTileWriter : IAsyncDisposable
{
    private readonly NpgsqlConnection _conn;
    private readonly NpgsqlTransaction _tx;
    private NpgsqlBinaryImporter? _importer;
    private readonly SceneClaim _claim;
    private readonly int _modelId;
    private bool _completed;

    public int Count { get; private set; }

    private readonly CatalogStore _store;

    internal SceneTileWriter(NpgsqlConnection conn, NpgsqlTransaction tx, NpgsqlBinaryImporter importer, SceneClaim claim, int modelId, CatalogStore store)
    {
        _conn = conn; _tx = tx; _importer = importer; _claim = claim; _modelId = modelId; _store = store;
    }

    /// <summary>
    /// A run taking the scene over ends this writer's server session (CatalogStore.EndTileWriterAsync): the write then
    /// fails as a broken connection. Asked on a fresh connection, the claim says which it was — taken over (lease
    /// lost) or a database that went away (the original error).
    /// </summary>
    private async Task<Exception> Explain(NpgsqlException e)
    {
        try { return await _store.ClaimHeldAsync(_claim) ? e : new SceneLeaseLostException(_claim.SceneId); }
        catch (NpgsqlException) { return e; }
    }

    internal static async Task<NpgsqlBinaryImporter> BeginTilesCopyAsync(NpgsqlConnection conn, CancellationToken ct)
    {
        var importer = await conn.BeginBinaryImportAsync("""
            COPY tiles (scene_id, model_id, grid_row, grid_col, px_x, px_y, px_width, px_height,
                        footprint, footprint_native, nodata_fraction, caption, embedding) FROM STDIN (FORMAT BINARY)
            """, ct);
        // The end of the COPY waits for the server to insert what it has not yet (the HNSW index per row): on a busy
        // 2-core machine about 1.3 ms a tile, minutes for the largest scenes, far past Npgsql's default 30 s.
        importer.Timeout = TimeSpan.FromMinutes(30);
        return importer;
    }

    /// <summary>
    /// Streams tiles into the open COPY. Tiles with <see cref="TileRecord.Cells"/> end it (one COPY at a time per
    /// connection, and their cells reference them), their cells follow, and the next batch opens a new one.
    /// </summary>
    public async Task WriteAsync(IEnumerable<TileRecord> tiles, CancellationToken ct = default)
    {
        if (_completed) throw new InvalidOperationException("The scene's tiles were already completed.");
        try { await WriteTilesAsync(tiles, ct); }
        catch (NpgsqlException e) when (e is not PostgresException || e is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown })
        {
            var explained = await Explain(e);
            if (ReferenceEquals(explained, e)) throw;
            throw explained;
        }
    }

    private async Task WriteTilesAsync(IEnumerable<TileRecord> tiles, CancellationToken ct)
    {
        var writer = _importer ??= await BeginTilesCopyAsync(_conn, ct);
        List<TileRecord>? withCells = null;
        foreach (var t in tiles)
        {
            if (t.Cells is not null) (withCells ??= []).Add(t);
            if (t.Embedding.Length != SharedSpace.Dimensions)
                throw new ArgumentException($"Tile ({t.GridRow},{t.GridCol}) has a {t.Embedding.Length}-d vector; {SharedSpace.Dimensions} expected.");
            await writer.StartRowAsync(ct);
            await writer.WriteAsync(_claim.SceneId, NpgsqlDbType.Bigint, ct);
            await writer.WriteAsync(_modelId, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.GridRow, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.GridCol, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.PxX, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.PxY, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.PxWidth, NpgsqlDbType.Integer, ct);
            await writer.WriteAsync(t.PxHeight, NpgsqlDbType.Integer, ct);
            if (t.Footprint is null) await writer.WriteNullAsync(ct); else await writer.WriteAsync((Geometry)t.Footprint, NpgsqlDbType.Geometry, ct);
            await writer.WriteAsync((Geometry)t.FootprintNative, NpgsqlDbType.Geometry, ct);
            await writer.WriteAsync(t.NodataFraction, NpgsqlDbType.Real, ct);
            if (t.Caption is null) await writer.WriteNullAsync(ct); else await writer.WriteAsync(t.Caption, NpgsqlDbType.Text, ct);
            await writer.WriteAsync(new Vector(t.Embedding), "vector", ct);
            Count++;
        }
        if (withCells is null) return;
        await writer.CompleteAsync(ct);
        await writer.DisposeAsync();
        _importer = null;
        await CatalogStore.WriteCellsAsync(_conn, _claim.SceneId, _modelId, withCells, ct);
    }

    /// <summary>Ends the COPY, records the scene's metadata and status (done, or empty without tiles), commits.</summary>
    public async Task CompleteAsync(SceneMetadata meta, int skippedTiles, CancellationToken ct = default)
    {
        if (_completed) throw new InvalidOperationException("The scene's tiles were already completed.");
        try { await CommitAsync(meta, skippedTiles, ct); }
        catch (NpgsqlException e) when (e is not PostgresException || e is PostgresException { SqlState: PostgresErrorCodes.AdminShutdown })
        {
            var explained = await Explain(e);
            if (ReferenceEquals(explained, e)) throw;
            throw explained;
        }
    }

    private async Task CommitAsync(SceneMetadata meta, int skippedTiles, CancellationToken ct)
    {
        if (_importer is { } writer)
        {
            await writer.CompleteAsync(ct);
            await writer.DisposeAsync();
            _importer = null;
        }
        await using (var upd = new NpgsqlCommand("""
            UPDATE scenes SET status = $2, error = NULL, tile_count = $3, skipped_tiles = $4,
                   width_px = $5, height_px = $6, band_count = $7, crs_wkt = $8, crs_epsg = $9,
                   footprint = $10, acquired_at = $11, tile_gsd = $13, warning = $14,
                   acquired_source = $15, stac_collection = $16, coverage = $17, out_of_range = $18,
                   updated_at = now(), lease_expires_at = NULL
             WHERE id = $1 AND claim_token = $12
            """, _conn, _tx))
        {
            upd.Parameters.Add(new() { Value = _claim.SceneId });
            upd.Parameters.Add(new() { Value = Count > 0 ? "done" : "empty" });
            upd.Parameters.Add(new() { Value = Count });
            upd.Parameters.Add(new() { Value = skippedTiles });
            upd.Parameters.Add(new() { Value = meta.WidthPx });
            upd.Parameters.Add(new() { Value = meta.HeightPx });
            upd.Parameters.Add(new() { Value = meta.BandCount });
            upd.Parameters.Add(new() { Value = (object?)meta.CrsWkt ?? DBNull.Value });
            upd.Parameters.Add(new() { Value = (object?)meta.CrsEpsg ?? DBNull.Value });
            upd.Parameters.Add(new() { Value = (object?)meta.Footprint ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
            upd.Parameters.Add(new() { Value = (object?)meta.AcquiredAt?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            upd.Parameters.Add(new() { Value = _claim.Token });
            upd.Parameters.Add(new() { Value = (object?)meta.TileGsd ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
            upd.Parameters.Add(new() { Value = (object?)meta.Warning ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            upd.Parameters.Add(new() { Value = (object?)meta.AcquiredSource ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            upd.Parameters.Add(new() { Value = (object?)meta.StacCollection ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
            upd.Parameters.Add(new() { Value = (object?)meta.Coverage ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
            upd.Parameters.Add(new() { Value = meta.OutOfRange });
            // Fenced: a worker whose lease was taken over rolls back (DisposeAsync) instead of committing a second copy.
            if (await upd.ExecuteNonQueryAsync(ct) == 0) throw new SceneLeaseLostException(_claim.SceneId);
        }
        // The same transaction makes the version current at its paths, so searches see the old version or the new one.
        await CatalogStore.ShowCompletedVersionAsync(_conn, _tx, _claim, ct);
        await _tx.CommitAsync(ct);
        _completed = true;
    }

    public async ValueTask DisposeAsync()
    {
        if (_importer != null)
        {
            // An unfinished COPY is cancelled by disposing it; the transaction then rolls back.
            try { await _importer.DisposeAsync(); } catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { }
        }
        if (!_completed)
        {
            try { await _tx.RollbackAsync(); } catch (Exception e) when (e is NpgsqlException or InvalidOperationException) { }
        }
        await _tx.DisposeAsync();
        await _conn.DisposeAsync();
    }
}
