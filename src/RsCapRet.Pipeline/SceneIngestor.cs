using System.Threading.Channels;
using System.Diagnostics;
using System.Security.Cryptography;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Pipeline;

public enum IngestOutcome { Ingested, Empty, AlreadyIngested, HeldByAnotherWorker, Failed }

public sealed record IngestOptions
{
    public TilingOptions Tiling { get; init; } = new();
    public int BatchSize { get; init; } = 16;
    public bool Caption { get; init; } = true;
    /// <summary>How long a claimed scene may go without a heartbeat before another worker may take it over.</summary>
    public TimeSpan Lease { get; init; } = TimeSpan.FromMinutes(10);
}

public sealed record IngestResult(string Path, long? SceneId, IngestOutcome Outcome, int Tiles, int SkippedTiles,
    TimeSpan Elapsed, string? Error = null, string? Warning = null, string? Resolution = null)
{
    public string OutcomeText => Outcome switch
    {
        IngestOutcome.AlreadyIngested => "already ingested",
        IngestOutcome.HeldByAnotherWorker => "being ingested by another worker",
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
    public async Task<IngestResult> IngestAsync(string path, IngestOptions? options = null, Action<IngestProgress>? progress = null,
        CancellationToken ct = default)
    {
        options ??= new IngestOptions();
        var sw = Stopwatch.StartNew();
        var tiling = options.Tiling with { TileSize = encoder.InputSize };
        var file = await DescribeFileAsync(path, ct);
        var modelId = await store.RegisterModelAsync(encoder.Identity, ct);
        var claim = await store.TryClaimSceneAsync(file, modelId, options.Lease, ct);
        if (claim is null)
        {
            var held = await store.FindSceneAsync(file.ContentSha256, modelId, ct);
            return new IngestResult(path, held?.Id, held?.Status == SceneStatus.Ingesting ? IngestOutcome.HeldByAnotherWorker : IngestOutcome.AlreadyIngested,
                held?.TileCount ?? 0, held?.SkippedTiles ?? 0, sw.Elapsed);
        }

        try
        {
            var plan = PlanResolution(path, tiling.TargetGsd);
            tiling = tiling with { TargetGsd = plan.TargetGsd };
            using var tiler = SceneTiler.Open(path, tiling);
            var info = tiler.Info;
            var gridTiles = info.GridRows * info.GridCols;
            progress?.Invoke(new IngestProgress(path, 0, 0, gridTiles,
                $"{path}: {info.Width}x{info.Height} px, {info.BandCount} bands, EPSG:{info.Crs?.Epsg?.ToString() ?? "?"}, " +
                $"{info.GridRows}x{info.GridCols} tiles of {tiling.TileSize} px; {plan.Note}" + (plan.Warning is { } w ? $"\nwarning: {path}: {w}" : "")));
            // Tiles stream into the scene's open transaction batch by batch: memory does not grow with the scene.
            await using var writer = await store.BeginSceneTilesAsync(claim, modelId, ct);
            // GDAL reads the next batches on another thread while the model works on this one (two batches ahead at most).
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var batches = Channel.CreateBounded<List<RasterTile>>(new BoundedChannelOptions(2) { SingleReader = true, SingleWriter = true });
            var reader = Task.Run(async () =>
            {
                try
                {
                    var batch = new List<RasterTile>(options.BatchSize);
                    foreach (var tile in tiler.Tiles())
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
                await foreach (var batch in batches.Reader.ReadAllAsync(ct))
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
                info.FootprintWgs84 is { } f ? Geometries.ToPolygon(f) : null, info.AcquiredAt, info.TileGsd, plan.Warning);
            await writer.CompleteAsync(meta, tiler.SkippedTiles, ct);
            progress?.Invoke(new IngestProgress(path, writer.Count, tiler.SkippedTiles, gridTiles,
                $"{path}: {writer.Count} tiles stored, {tiler.SkippedTiles} skipped (nodata), {sw.Elapsed.TotalSeconds:F1} s"));
            return new IngestResult(path, claim.SceneId, writer.Count > 0 ? IngestOutcome.Ingested : IngestOutcome.Empty,
                writer.Count, tiler.SkippedTiles, sw.Elapsed, Warning: plan.Warning, Resolution: plan.Note);

            async Task WriteBatch(List<RasterTile> batch)
            {
                var encoded = encoder.Encode(batch.Select(t => t.Image).ToList(), options.Caption, ct);
                if (encoded.Count != batch.Count) throw new InvalidOperationException($"The encoder returned {encoded.Count} results for {batch.Count} tiles.");
                var records = new List<TileRecord>(batch.Count);
                for (var i = 0; i < batch.Count; i++)
                {
                    var t = batch[i];
                    records.Add(new TileRecord(t.GridRow, t.GridCol, t.Window.X, t.Window.Y, t.Window.Width, t.Window.Height,
                        t.FootprintWgs84 is { } w ? Geometries.ToPolygon(w) : null, Geometries.ToPolygon(t.FootprintNative),
                        (float)t.NodataFraction, encoded[i].Caption, encoded[i].Embedding));
                }
                await writer.WriteAsync(records, ct);
                await store.HeartbeatAsync(claim, ct);
            }
        }
        catch (Exception e)
        {
            // Record the failure on this scene only; CancellationToken.None so a cancelled job still says why. When
            // another worker took the scene over (this one stalled past its lease), the scene is theirs: no failure
            // is recorded, whatever this run tripped over (lease check, or their tiles' unique keys).
            if (!await store.FailSceneAsync(claim, e is OperationCanceledException ? "cancelled" : e.Message, CancellationToken.None))
                return new IngestResult(path, claim.SceneId, IngestOutcome.HeldByAnotherWorker, 0, 0, sw.Elapsed);
            throw;
        }
    }

    /// <summary>The scene's native pixel size against the model's training resolution (see <see cref="ResolutionPolicy"/>).</summary>
    private ResolutionPlan PlanResolution(string path, double? requested)
    {
        using var ds = RasterDataset.Open(path);
        var gt = ds.GeoTransform ?? [0, 1, 0, 0, 0, 1];
        var native = Math.Sqrt(gt[1] * gt[1] + gt[4] * gt[4]);
        var metres = ds.Crs is { } crs && !crs.Wkt.TrimStart().StartsWith("GEOG", StringComparison.OrdinalIgnoreCase);
        return ResolutionPolicy.Plan(native, metres, requested, encoder.TrainingResolution);
    }

    /// <summary>Size and SHA-256 of the file, streamed (scenes can be many GB).</summary>
    public static async Task<SceneFile> DescribeFileAsync(string path, CancellationToken ct = default)
    {
        var full = Path.GetFullPath(path);
        if (!File.Exists(full)) throw new RasterException(path, Directory.Exists(full) ? "is a directory, not a raster file" : "does not exist");
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
