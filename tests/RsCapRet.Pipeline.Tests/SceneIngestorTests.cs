using System.Diagnostics;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Pipeline.Tests;

/// <summary>
/// A test encoder (not a model): the vector is the tile's mean colour in three axes, the caption names the
/// brightest channel. Enough to check what the pipeline stores and in which order.
/// </summary>
internal sealed class ColourEncoder(int inputSize = 224, int failOnCall = -1, RsCapRet.Model.TrainingResolution? resolution = null) : ITileEncoder
{
    private static readonly string[] ChannelNames = ["red", "green", "blue"];
    private int _calls;
    public ModelIdentity Identity { get; } = new("colour-test", "1", "none", "none", resolution is null ? "colour" : "colour-gsd");
    public int InputSize => inputSize;
    public RsCapRet.Model.TrainingResolution? TrainingResolution => resolution;

    public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct)
    {
        if (_calls++ == failOnCall) throw new InvalidOperationException("encoder failed on purpose");
        return tiles.Select(t =>
        {
            var v = new float[256];
            for (var c = 0; c < 3; c++) v[c] = (float)t.Pixels.Where((_, i) => i % 3 == c).Average(x => (double)x) + 1;
            return new TileEncoding(caption ? "mostly " + ChannelNames[Array.IndexOf(v, v[..3].Max())] : null, v);
        }).ToList();
    }
}

/// <summary>
/// The colour encoder behind a batch that runs until the test lets it finish (<see cref="Finish"/>) and, like a model's
/// forward pass, cannot be interrupted; <see cref="BatchStarted"/> completes when the first batch begins.
/// </summary>
internal sealed class SlowEncoder : ITileEncoder, IDisposable
{
    private readonly ColourEncoder _inner = new();
    private readonly ManualResetEventSlim _finish = new();
    public TaskCompletionSource BatchStarted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public ModelIdentity Identity => _inner.Identity;
    public int InputSize => _inner.InputSize;
    public RsCapRet.Model.TrainingResolution? TrainingResolution => null;

    public void Finish() => _finish.Set();
    public void Dispose() => _finish.Dispose();

    public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct)
    {
        BatchStarted.TrySetResult();
        // Deliberately deaf to ct: a forward pass cannot be interrupted.
        if (!_finish.Wait(TimeSpan.FromMinutes(5), CancellationToken.None)) throw new TimeoutException("the test never let the batch finish");
        return _inner.Encode(tiles, caption, ct);
    }
}

public sealed class SceneIngestorTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-ingest-");
    public void Dispose() => _dir.Delete(true);

    private static string Naip => Path.Combine(RepositoryPaths.FindRoot(), "samples", "scenes", "naip_m_4709963_se_14_1_20200831.tif");

    /// <summary>A copy with a unique trailing tag (TIFF readers ignore it), so each test's scene is its own content.</summary>
    private string UniqueCopyOf(string source, string name)
    {
        var path = Path.Combine(_dir.FullName, name);
        File.Copy(source, path);
        using var f = new FileStream(path, FileMode.Append);
        f.Write(Guid.NewGuid().ToByteArray());
        return path;
    }

    private async Task<long> CountTiles(long sceneId)
    {
        await using var cmd = db.DataSource.CreateCommand("SELECT count(*) FROM tiles WHERE scene_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = sceneId });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>The plan an ingest with default options makes for this encoder (what a claim by hand must name to meet it).</summary>
    private static ScenePlan DefaultPlan(ITileEncoder encoder) => IngestPlan.For(new RsCapRet.Raster.TilingOptions(), encoder.InputSize, captions: true).ToScenePlan();

    [Fact]
    public async Task IngestsTilesOnceAndSearchFindsThem()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-a.tif");
        var ingestor = new SceneIngestor(store, new ColourEncoder());
        var first = await ingestor.IngestAsync(path, new IngestOptions { BatchSize = 5 });
        Assert.Equal(IngestOutcome.Ingested, first.Outcome);
        Assert.Equal(20, first.Tiles);          // 5 x 4, the last column and row flush with the edges
        Assert.Equal(0, first.SkippedTiles);
        Assert.Equal(20, await CountTiles(first.SceneId!.Value));

        var again = await ingestor.IngestAsync(path);
        Assert.Equal(IngestOutcome.AlreadyIngested, again.Outcome);
        Assert.Equal(first.SceneId, again.SceneId);
        Assert.Equal(20, await CountTiles(first.SceneId.Value));

        // The same bytes under another name are the same version: shown at both paths, its tiles computed once.
        var renamedPath = Path.Combine(_dir.FullName, "naip-renamed.tif");
        File.Copy(path, renamedPath);
        var renamed = await ingestor.IngestAsync(renamedPath);
        Assert.Equal((IngestOutcome.Reused, first.SceneId), (renamed.Outcome, renamed.SceneId));
        Assert.Equal(20, await CountTiles(first.SceneId.Value));

        var hits = await store.SearchAsync([.. new float[] { 0, 0, 300 }, .. new float[253]], 3, new SearchFilter(SceneId: first.SceneId));
        Assert.Equal(3, hits.Count);
        Assert.All(hits, h => Assert.StartsWith("mostly ", h.Caption));
        Assert.All(hits, h => Assert.InRange(h.Footprint!.Centroid.X, -99.19, -99.12));
    }

    [Fact]
    public async Task CorruptSceneFailsAloneWithItsPathAndOtherScenesStayIntact()
    {
        var store = new CatalogStore(db.DataSource);
        var ingestor = new SceneIngestor(store, new ColourEncoder());
        var good = await ingestor.IngestAsync(UniqueCopyOf(Naip, "naip-good.tif"));
        var bytes = await File.ReadAllBytesAsync(Naip);
        var corrupt = Path.Combine(_dir.FullName, "corrupt.tif");
        await File.WriteAllBytesAsync(corrupt, bytes[..(bytes.Length / 3)]);

        var ex = await Assert.ThrowsAsync<RasterException>(() => ingestor.IngestAsync(corrupt));
        Assert.Contains(corrupt, ex.Message);
        var file = await SceneIngestor.DescribeFileAsync(corrupt);
        var row = await store.FindSceneAsync(file.ContentSha256, (await store.GetSceneAsync(good.SceneId!.Value))!.ModelId);
        Assert.Equal(SceneStatus.Failed, row!.Status);
        Assert.Contains(corrupt, row.Error);
        Assert.Equal(0, await CountTiles(row.Id));
        Assert.Equal(SceneStatus.Done, (await store.GetSceneAsync(good.SceneId.Value))!.Status);
        Assert.Equal(good.Tiles, await CountTiles(good.SceneId.Value));
    }

    [Fact]
    public async Task FailureMidSceneStoresNothingAndARetrySucceeds()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-retry.tif");
        var failing = new SceneIngestor(store, new ColourEncoder(failOnCall: 1));
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing.IngestAsync(path, new IngestOptions { BatchSize = 4 }));
        var file = await SceneIngestor.DescribeFileAsync(path);
        var modelId = await store.RegisterModelAsync(new ColourEncoder().Identity);
        var row = (await store.FindSceneAsync(file.ContentSha256, modelId))!;
        Assert.Equal(SceneStatus.Failed, row.Status);
        Assert.Equal("encoder failed on purpose", row.Error);
        Assert.Equal(0, await CountTiles(row.Id));

        var retry = await new SceneIngestor(store, new ColourEncoder()).IngestAsync(path);
        Assert.Equal(IngestOutcome.Ingested, retry.Outcome);
        Assert.Equal(row.Id, retry.SceneId);
        Assert.Equal(20, await CountTiles(row.Id));
    }

    [Fact]
    public async Task AllNodataSceneEndsEmptyNotFailed()
    {
        var path = Path.Combine(_dir.FullName, "blank.tif");
        RasterWriter.WriteGeoTiff(path, 300, 300, [new byte[90_000]], [500000, 1, 0, 5200000, 0, -1], 32614, nodata: 0);
        var result = await new SceneIngestor(new CatalogStore(db.DataSource), new ColourEncoder()).IngestAsync(path);
        Assert.Equal(IngestOutcome.Empty, result.Outcome);
        Assert.Equal(0, result.Tiles);
        Assert.Equal(4, result.SkippedTiles);
        Assert.Equal(SceneStatus.Empty, (await new CatalogStore(db.DataSource).GetSceneAsync(result.SceneId!.Value))!.Status);
    }

    [Fact]
    public async Task MissingFileIsAClearErrorAndNoRow()
    {
        var path = Path.Combine(_dir.FullName, "nope.tif");
        var ex = await Assert.ThrowsAsync<RasterException>(() => new SceneIngestor(new CatalogStore(db.DataSource), new ColourEncoder()).IngestAsync(path));
        Assert.Contains(path, ex.Message);
        Assert.Contains("does not exist", ex.Message);
    }

    [Fact]
    public async Task SceneFarCoarserThanTheTrainingRangeIsIngestedNativelyWithAWarningOnItsRow()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-coarse.tif");
        var ingestor = new SceneIngestor(store, new ColourEncoder(resolution: new RsCapRet.Model.TrainingResolution(0.34, 0.3, 1.0)));
        var r = await ingestor.IngestAsync(path);
        Assert.Equal(IngestOutcome.Ingested, r.Outcome);
        Assert.Contains("native 5 m/px", r.Resolution);
        Assert.Contains("far coarser", r.Warning);
        await using var cmd = db.DataSource.CreateCommand("SELECT warning, tile_gsd FROM scenes WHERE id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = r.SceneId!.Value });
        await using var row = await cmd.ExecuteReaderAsync();
        Assert.True(await row.ReadAsync());
        Assert.Contains("far coarser than the model's training range (0.3–1 m/px)", row.GetString(0));
        Assert.Equal(5.0, row.GetDouble(1), 6);
    }

    [Fact]
    public async Task SceneFinerThanTheTrainingRangeIsResampledToTheModelsGsd()
    {
        var store = new CatalogStore(db.DataSource);
        var aerial = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "scenes", "neon_OSBS_029_utm17n_0.1m.tif");
        var path = UniqueCopyOf(aerial, "neon-fine.tif");
        var ingestor = new SceneIngestor(store, new ColourEncoder(inputSize: 64, resolution: new RsCapRet.Model.TrainingResolution(0.4, 0.3, 1.0)));
        var r = await ingestor.IngestAsync(path);
        Assert.Null(r.Warning);
        Assert.Contains("resampled from the native 0.1 to 0.4 m/px", r.Resolution);
        // 400 px at 0.1 m = 40 m; tiles of 64 px at 0.4 m cover 25.6 m: a 2 x 2 grid (native would be 7 x 7).
        Assert.Equal(4, r.Tiles + r.SkippedTiles);
    }

    [Fact]
    public async Task ABatchSlowerThanTheLeaseKeepsItsScene()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-slow.tif");
        // Seconds, not milliseconds: a renewal every lease/3 must keep up on a loaded 2-core CI machine (a 600 ms
        // lease lapsed there while test assemblies ran in parallel).
        using var encoder = new SlowEncoder();
        var lease = TimeSpan.FromSeconds(3);
        var ingest = new SceneIngestor(store, encoder).IngestAsync(path, new IngestOptions { BatchSize = 20, Lease = lease });
        await encoder.BatchStarted.Task;
        // Two leases into the one batch (it runs until Finish): only a timed renewal keeps the scene.
        await Task.Delay(TimeSpan.FromSeconds(6.5));

        var file = await SceneIngestor.DescribeFileAsync(path);
        Assert.Null(await store.TryClaimSceneAsync(file, await store.RegisterModelAsync(encoder.Identity), DefaultPlan(encoder), 1, lease));
        encoder.Finish();
        var result = await ingest;
        Assert.Equal(IngestOutcome.Ingested, result.Outcome);
        Assert.Equal(20, await CountTiles(result.SceneId!.Value));
    }

    [Fact]
    public async Task ACancelledRunReleasesItsSceneBeforeItsBatchEndsAndSaysWhy()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-cancel.tif");
        using var encoder = new SlowEncoder();
        using var cancel = new CancellationTokenSource();
        var ingest = new SceneIngestor(store, encoder).IngestAsync(path,
            new IngestOptions { BatchSize = 20, CancelReason = () => "cancelled (SIGINT)" }, ct: cancel.Token);
        await encoder.BatchStarted.Task;
        var file = await SceneIngestor.DescribeFileAsync(path);
        var modelId = await store.RegisterModelAsync(encoder.Identity);
        await cancel.CancelAsync();

        // Released while the batch is still running (it runs until Finish), not when it ends (nor when a ten-minute lease lapses).
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        SceneRow? row;
        while ((row = await store.FindSceneAsync(file.ContentSha256, modelId))!.Status == SceneStatus.Ingesting && DateTime.UtcNow < deadline)
            await Task.Delay(50);
        Assert.False(ingest.IsCompleted);
        Assert.Equal((SceneStatus.Failed, "cancelled (SIGINT)"), (row.Status, row.Error));

        encoder.Finish();
        var stopped = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => ingest);
        Assert.Equal("cancelled (SIGINT)", stopped.Message);
        Assert.Equal(0, await CountTiles(row.Id));
        var next = await new SceneIngestor(store, new ColourEncoder()).IngestAsync(path);
        Assert.Equal((IngestOutcome.Ingested, row.Id), (next.Outcome, next.SceneId!.Value));
    }

    [Fact]
    public async Task AHeldSceneIsReportedWithItsLeaseOrWaitedFor()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-held.tif");
        var ingestor = new SceneIngestor(store, new ColourEncoder());
        // A holder that died: its claim stays until its own lease lapses (six seconds: a loaded machine's slow first
        // attempt still finds it held, with time left to wait for).
        var file = await SceneIngestor.DescribeFileAsync(path);
        var holder = (await store.TryClaimSceneAsync(file, await store.RegisterModelAsync(new ColourEncoder().Identity), DefaultPlan(new ColourEncoder()), 1, TimeSpan.FromSeconds(6)))!;

        var held = await ingestor.IngestAsync(path, new IngestOptions { Lease = TimeSpan.FromMinutes(10) });
        Assert.Equal((IngestOutcome.HeldByAnotherWorker, holder.SceneId), (held.Outcome, held.SceneId!.Value));
        Assert.InRange(held.HolderLeaseLeft!.Value.TotalSeconds, 1, 6);

        var notes = new List<string>();
        var waited = Stopwatch.StartNew();
        var result = await ingestor.IngestAsync(path, new IngestOptions { WaitIfHeld = true }, p => { if (p.Message is { } m) notes.Add(m); });
        Assert.Equal((IngestOutcome.Ingested, holder.SceneId), (result.Outcome, result.SceneId!.Value));
        Assert.True(waited.Elapsed > TimeSpan.FromSeconds(0.5), $"took the scene after {waited.Elapsed} while its lease ran");
        Assert.Contains(notes, n => n.Contains("waiting for it to finish or for its lease to lapse"));
        Assert.Equal(20, await CountTiles(holder.SceneId));
    }
}

public sealed class ResolutionPolicyTests
{
    private static readonly RsCapRet.Model.TrainingResolution Model = new(0.34, 0.3, 1.0);

    [Theory]
    [InlineData(0.1, 0.34, "resampled from the native 0.1 to 0.34", false)]
    [InlineData(0.5, null, "inside the model's training range", false)]
    [InlineData(1.5, null, "coarser than the model's training range", false)]
    [InlineData(5.0, null, "coarser than the model's training range", true)]
    public void NativeResolutionAgainstTheTrainingRange(double native, double? target, string note, bool warned)
    {
        var plan = ResolutionPolicy.Plan(native, metres: true, requested: null, Model);
        Assert.Equal(target, plan.TargetGsd);
        Assert.Contains(note, plan.Note);
        Assert.Equal(warned, plan.Warning is not null);
    }

    [Fact]
    public void RequestedGsdWinsAndIsStillJudged()
    {
        var plan = ResolutionPolicy.Plan(0.1, metres: true, requested: 0.05, Model);
        Assert.Equal(0.05, plan.TargetGsd);
        Assert.Contains("far finer", plan.Warning);
    }

    [Fact]
    public void DegreesAndUnknownTrainingResolutionAreLeftAlone()
    {
        Assert.Null(ResolutionPolicy.Plan(0.0001, metres: false, requested: null, Model).TargetGsd);
        Assert.Null(ResolutionPolicy.Plan(0.1, metres: true, requested: null, null).Warning);
    }

}
