using System.Diagnostics;
using System.Security.Cryptography;
using System.Threading.Channels;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

/// <summary>
/// What an ingest did with a path. AlreadyIngested: the path shows this content with this plan already (nothing to
/// do). Reused: the same bytes and plan are indexed already (a copy, a restored file): the path now shows that
/// version, no model work. SkippedOutOfRange: --skip-out-of-range and the scene is far outside the model's range.
/// </summary>
public enum IngestOutcome { Ingested, Empty, AlreadyIngested, Reused, HeldByAnotherWorker, SkippedOutOfRange, Failed }

public sealed record IngestOptions
{
    public TilingOptions Tiling { get; init; } = new();
    public int BatchSize { get; init; } = 16;
    public bool Caption { get; init; } = true;
    /// <summary>
    /// How long a claimed scene may go without a renewal before another run may take it over; renewed every third of
    /// it and after every batch. Default: RSCAPRET_SCENE_LEASE_SECONDS, else 10 minutes.
    /// </summary>
    public TimeSpan Lease { get; init; } = LeaseFromEnvironment();
    /// <summary>When another run holds the scene, wait until it finishes or its lease lapses instead of returning at once.</summary>
    public bool WaitIfHeld { get; init; }
    /// <summary>What a cancelled run records on its scene, e.g. "cancelled (SIGTERM)"; default "cancelled".</summary>
    public Func<string>? CancelReason { get; init; }
    /// <summary>Ingest a new revision even when the path shows this content and plan already.</summary>
    public bool Force { get; init; }
    /// <summary>Leave out scenes whose resolution lies far outside the model's training range (nothing is stored).</summary>
    public bool SkipOutOfRange { get; init; }
    /// <summary>Keep each tile's cell vectors (tile_cells, half precision) from the same forward pass (issue 30).</summary>
    public bool Cells { get; init; }

    public const string LeaseVariable = "RSCAPRET_SCENE_LEASE_SECONDS";

    public static TimeSpan LeaseFromEnvironment() => TimeSpan.FromSeconds(Core.Configuration.EnvironmentSettings.Load<SceneClaimOptions>().LeaseSeconds);
}

public sealed record IngestResult(string Path, long? SceneId, IngestOutcome Outcome, int Tiles, int SkippedTiles,
    TimeSpan Elapsed, string? Error = null, string? Warning = null, string? Resolution = null, TimeSpan? HolderLeaseLeft = null)
{
    /// <summary>Valid pixels under a stored tile / valid pixels (null when not measured).</summary>
    public double? Coverage { get; init; }
    /// <summary>The version the path showed before this run made another current (null: new path, or unchanged).</summary>
    public long? ReplacedSceneId { get; init; }
    /// <summary>The version a reused one was first ingested for (its path then).</summary>
    public string? ReusedFrom { get; init; }
    public bool OutOfRange { get; init; }
    /// <summary>The claim this run took the scene over from (a process on this machine that is gone, a lapsed lease).</summary>
    public string? TakenOverFrom { get; init; }

    public string OutcomeText => Outcome switch
    {
        IngestOutcome.AlreadyIngested => "already ingested",
        IngestOutcome.Reused => $"same bytes as scene {SceneId}" + (ReusedFrom is { } f ? $" ({f})" : "") + ": shown without model work",
        IngestOutcome.HeldByAnotherWorker => "being ingested by another worker",
        IngestOutcome.SkippedOutOfRange => "skipped (out of the model's range)",
        IngestOutcome.Ingested when ReplacedSceneId is { } old => $"ingested (replaces scene {old})",
        _ => Outcome.ToString().ToLowerInvariant(),
    };
}

/// <summary>
/// The ingest path: scene file -> tiles (Raster) -> batched captions + vectors (encoder) -> one transaction (Storage).
/// Idempotent by content: the same bytes with the same model are ingested once; a failure records the error on
/// the scene's own row and leaves every other scene untouched.
/// </summary>
/// <summary>
/// Where a scene's ingestion stands: tiles stored and skipped (nodata) of the grid's tiles; <see cref="Message"/>
/// is set on the first (scene description) and the last (summary) report.
/// </summary>
public sealed record IngestProgress(string Path, int Stored, int Skipped, int GridTiles, string? Message = null)
{
    public int Done => Stored + Skipped;
}

public sealed class SceneIngestor(CatalogStore store, ITileEncoder encoder)
{
    /// <summary>How often a run waiting for a held scene looks again (<see cref="IngestOptions.WaitIfHeld"/>).</summary>
    private static readonly TimeSpan HeldScenePoll = TimeSpan.FromSeconds(1);

    public async Task<IngestResult> IngestAsync(string path, IngestOptions? options = null, Action<IngestProgress>? progress = null,
        CancellationToken ct = default)
    {
        options ??= new IngestOptions();
        var sw = Stopwatch.StartNew();
        var file = await DescribeKnownFileAsync(path, ct);
        var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
        if (encoder.Directory is { } modelDir) await store.RecordModelDirectoryAsync(modelId, modelDir, ct);
        var plan = (IngestPlan.For(options.Tiling, encoder.InputSize, options.Caption) with { Cells = options.Cells }).ToScenePlan();

        // The version decision: this path already shows these bytes with this plan; or the version exists (another
        // path, an earlier state of this one) and is shown here without model work; or a version is ingested.
        var state = await store.GetScenePathAsync(file.Path, modelId, ct);
        if (!options.Force && state is { Removed: false, Current: { } shown } && shown.ContentSha256 == file.ContentSha256 && shown.PlanKey == plan.Key)
        {
            await store.NoteDecisionAsync(file.Path, modelId, "unchanged", ct);
            return new IngestResult(path, shown.Id, IngestOutcome.AlreadyIngested, shown.TileCount, shown.SkippedTiles, sw.Elapsed);
        }
        var existing = await store.FindVersionAsync(file.ContentSha256, modelId, plan.Key, ct);
        if (!options.Force && existing is { IsComplete: true })
            return await ReuseAsync(existing);
        var revision = existing is { IsComplete: true } ? existing.Revision + 1 : existing?.Revision ?? 1;

        TilingPlan? tilingPlan = null;
        if (options.SkipOutOfRange)
        {
            tilingPlan = TilingPlan.For(path, options.Tiling, new ModelTiling(encoder.InputSize, encoder.TrainingResolution));
            if (tilingPlan.Resolution.OutOfRange)
                return new IngestResult(path, null, IngestOutcome.SkippedOutOfRange, 0, 0, sw.Elapsed, Warning: tilingPlan.Resolution.Warning,
                    Resolution: tilingPlan.Resolution.Note)
                { OutOfRange = true };
        }

        var claim = await store.TryClaimSceneAsync(file, modelId, plan, revision, options.Lease, ct);
        var waiting = false;
        while (claim is null)
        {
            var held = await store.FindVersionAsync(file.ContentSha256, modelId, plan.Key, ct);
            if (held is { IsComplete: true } && (!options.Force || held.Revision >= revision))
                return await ReuseAsync(held);
            if (held is { Status: SceneStatus.Ingesting })
            {
                var left = await store.LeaseLeftAsync(held.Id, options.Lease, ct);
                if (!options.WaitIfHeld)
                    return new IngestResult(path, held.Id, IngestOutcome.HeldByAnotherWorker, 0, 0, sw.Elapsed, HolderLeaseLeft: left);
                if (!waiting)
                    progress?.Invoke(new IngestProgress(path, 0, 0, 0, $"{path}: scene {held.Id} is being ingested by another process; " +
                        "waiting for it to finish or for its lease to lapse" + (left is { } l ? $" (in {l.TotalSeconds:F0} s unless renewed)" : "")));
                waiting = true;
                await Task.Delay(HeldScenePoll, ct);
            }
            // Otherwise the holder released it (failed, cancelled) between the two queries: claim it now.
            claim = await store.TryClaimSceneAsync(file, modelId, plan, revision, options.Lease, ct);
        }

        if (waiting) sw.Restart();   // the time reported is this run's work, not the wait
        // Searches keep seeing what the path shows now until this version completes and takes its place.
        await store.MarkPendingAsync(file.Path, modelId, claim.SceneId, ct);
        await using var keeper = new SceneClaimKeeper(store, claim, CancelReason, ct);
        var work = keeper.Token;
        try
        {
            var (tiling, resolution) = tilingPlan ?? TilingPlan.For(path, options.Tiling, new ModelTiling(encoder.InputSize, encoder.TrainingResolution));
            using var tiler = SceneTiler.Open(path, tiling, work);   // a cancelled run stops GDAL mid-read
            var info = tiler.Info;
            // A scene smaller than a quarter of a tile, or one with an undeclared collar, is warned about as a far-off
            // resolution is: stored, listed, printed.
            var warnings = new[] { resolution.Warning }.OfType<string>().Concat(tiler.Warnings(work)).ToArray();
            var warning = warnings.Length == 0 ? null : string.Join("; ", warnings);
            var gridTiles = info.GridRows * info.GridCols;
            progress?.Invoke(new IngestProgress(path, 0, 0, gridTiles,
                $"{path}: {info.Width}x{info.Height} px, {Counted.Of(info.BandCount, "band")}, EPSG:{info.Crs?.Epsg?.ToString() ?? "?"}, " +
                $"{info.GridRows}x{info.GridCols} tiles of {tiling.TileSize} px; {resolution.Note}"));
            // Tiles stream into the scene's open transaction batch by batch: memory does not grow with the scene.
            await using var writer = await store.BeginSceneTilesAsync(claim, modelId, work);
            // GDAL reads the next batches on another thread while the model works on this one (two batches ahead at most).
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(work);
            var batches = Channel.CreateBounded<List<RasterTile>>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
            var reader = Task.Run(async () =>
            {
                try
                {
                    var batch = new List<RasterTile>(options.BatchSize);
                    foreach (var tile in tiler.Tiles(stop.Token))
                    {
                        stop.Token.ThrowIfCancellationRequested();
                        batch.Add(tile);
                        if (batch.Count < options.BatchSize) continue;
                        await batches.Writer.WriteAsync(batch, stop.Token);
                        batch = new List<RasterTile>(options.BatchSize);
                    }
                    if (batch.Count > 0) await batches.Writer.WriteAsync(batch, stop.Token);
                    batches.Writer.Complete();
                }
                catch (Exception e) { batches.Writer.Complete(e); }
            }, CancellationToken.None);
            try
            {
                await foreach (var batch in batches.Reader.ReadAllAsync(work))
                {
                    await WriteBatch(batch);
                    progress?.Invoke(new IngestProgress(path, writer.Count, tiler.SkippedTiles, gridTiles));
                }
            }
            finally
            {
                await stop.CancelAsync();   // on failure, stop the reader before the tiler is disposed
                await reader;
            }

            var meta = new SceneMetadata(info.Width, info.Height, info.BandCount, info.Crs?.Wkt, info.Crs?.Epsg,
                info.FootprintWgs84 is { } f ? Geometries.ToPolygon(f) : null, info.AcquiredAt, info.GsdInMetres ? info.TileGsd : null, warning,
                info.Acquisition?.SourceName, info.Acquisition?.StacCollection, tiler.Coverage, resolution.OutOfRange);
            await writer.CompleteAsync(meta, tiler.SkippedTiles, work);
            var covered = tiler.Coverage is { } cov ? $", coverage {cov:P1}" : "";
            progress?.Invoke(new IngestProgress(path, writer.Count, tiler.SkippedTiles, gridTiles,
                $"{path}: {Counted.Of(writer.Count, "tile")} stored, {tiler.SkippedTiles} skipped (nodata){covered}, {sw.Elapsed.TotalSeconds:F1} s"));
            var replaced = state?.Current is { } before && before.Id != claim.SceneId && state.Removed == false ? before.Id : (long?)null;
            return new IngestResult(path, claim.SceneId, writer.Count > 0 ? IngestOutcome.Ingested : IngestOutcome.Empty,
                writer.Count, tiler.SkippedTiles, sw.Elapsed, Warning: warning, Resolution: resolution.Note)
            { Coverage = tiler.Coverage, ReplacedSceneId = replaced, OutOfRange = resolution.OutOfRange, TakenOverFrom = claim.TakenOverFrom };

            async Task WriteBatch(List<RasterTile> batch)
            {
                var encoded = encoder.Encode(batch.Select(t => t.Image).ToList(), options.Caption, options.Cells, work);
                if (encoded.Count != batch.Count) throw new InvalidOperationException($"The encoder returned {encoded.Count} results for {batch.Count} tiles.");
                var records = new List<TileRecord>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                {
                    var t = batch[i];
                    records.Add(new TileRecord(t.GridRow, t.GridCol, t.Window.X, t.Window.Y, t.Window.Width, t.Window.Height,
                        t.FootprintWgs84 is { } w ? Geometries.ToPolygon(w) : null, Geometries.ToPolygon(t.FootprintNative),
                        (float)t.NodataFraction, encoded[i].Caption, encoded[i].Embedding)
                    { Cells = encoded[i].Cells is { } c ? new CellVectors(c.Rows, c.Cols, c.Cells) : null });
                }
                await writer.WriteAsync(records, work);
                await store.HeartbeatAsync(claim, work);
            }
        }
        catch (Exception e)
        {
            // Record why on this scene only, which releases it for the next run. A cancelled run says it was cancelled,
            // whatever the cancellation interrupted (the keeper may have released the claim already, so even a lease
            // check fails). When another worker took the scene over (this one stalled past its lease), the scene is
            // theirs: nothing is recorded, whatever this run tripped over (lease check, or their tiles' unique keys).
            var cancelled = ct.IsCancellationRequested;
            var recorded = await keeper.ReleaseAsync(cancelled ? CancelReason() : e.Message);
            if (cancelled) throw new OperationCanceledException(CancelReason(), e, ct);
            if (recorded == false)
                return new IngestResult(path, claim.SceneId, IngestOutcome.HeldByAnotherWorker, 0, 0, sw.Elapsed);
            throw;
        }

        string CancelReason() => options.CancelReason?.Invoke() ?? "cancelled";

        async Task<IngestResult> ReuseAsync(SceneRow version)
        {
            var before = await store.ShowVersionAsync(file.Path, modelId, version.Id,
                $"same bytes as scene {version.Id} ({version.Path}): shown without model work", ct);
            return new IngestResult(path, version.Id, IngestOutcome.Reused, version.TileCount, version.SkippedTiles, sw.Elapsed)
            { ReplacedSceneId = before is { } b && b != version.Id ? b : null, ReusedFrom = version.Path };
        }
    }

    private async Task<SceneFile> DescribeKnownFileAsync(string path, CancellationToken ct)
    {
        var full = Path.GetFullPath(path);
        return (await DescribeKnownAsync(store, full, await store.KnownFileAsync(full, ct), ct)).File;
    }

    /// <summary>
    /// The file's size and SHA-256: <paramref name="known"/>'s when its size and modification time are unchanged (a scan
    /// hashed it), else hashed and recorded for the next scan or ingest. <c>Hashed</c> says which.
    /// </summary>
    public static async Task<(SceneFile File, bool Hashed)> DescribeKnownAsync(CatalogStore store, string fullPath, KnownFile? known, CancellationToken ct)
    {
        var info = new FileInfo(fullPath);
        if (known is not null && known.Describes(info)) return (new SceneFile(fullPath, known.ContentSha256, info.Length), false);
        var file = await DescribeFileAsync(fullPath, ct);
        await store.RememberFileAsync(fullPath, new KnownFile(file.SizeBytes, info.LastWriteTimeUtc, file.ContentSha256), ct);
        return (file, true);
    }

    /// <summary>Size and SHA-256 of the file, streamed (scenes can be many GB).</summary>
    public static async Task<SceneFile> DescribeFileAsync(string path, CancellationToken ct = default)
    {
        var full = Path.GetFullPath(path);
        if (RasterDataset.WhyNotAFile(full) is { } problem) throw new RasterException(path, problem);
        await using var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan | FileOptions.Asynchronous);
        var hash = await SHA256.HashDataAsync(stream, ct);
        return new SceneFile(full, Convert.ToHexStringLower(hash), stream.Length);
    }
}

/// <summary>Footprint (plain ring) to NetTopologySuite polygon with its SRID.</summary>
public static class Geometries
{
    public static Polygon ToPolygon(Footprint f)
    {
        var factory = new GeometryFactory(new PrecisionModel(), f.Srid);
        return factory.CreatePolygon(f.Ring.Select(p => new Coordinate(p.X, p.Y)).ToArray());
    }
}
