using Npgsql;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Pipeline.Tests;

/// <summary>
/// A test encoder (not a model): the vector is the tile's mean colour in three axes, the caption names the
/// brightest channel. Enough to check what the pipeline stores and in which order.
/// </summary>
internal sealed class ColourEncoder(int inputSize = 224, int failOnCall = -1) : ITileEncoder
{
    private int _calls;
    public ModelIdentity Identity { get; } = new("colour-test", "1", "none", "none", "colour");
    public int InputSize => inputSize;

    public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct)
    {
        if (_calls++ == failOnCall) throw new InvalidOperationException("encoder failed on purpose");
        return tiles.Select(t =>
        {
            var v = new float[256];
            for (var c = 0; c < 3; c++) v[c] = (float)t.Pixels.Where((_, i) => i % 3 == c).Average(x => (double)x) + 1;
            var names = new[] { "red", "green", "blue" };
            return new TileEncoding(caption ? "mostly " + names[Array.IndexOf(v, v[..3].Max())] : null, v);
        }).ToList();
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

    [Fact]
    public async Task IngestsTilesOnceAndSearchFindsThem()
    {
        var store = new CatalogStore(db.DataSource);
        var path = UniqueCopyOf(Naip, "naip-a.tif");
        var ingestor = new SceneIngestor(store, new ColourEncoder());
        var first = await ingestor.IngestAsync(path, new IngestOptions { BatchSize = 5 });
        Assert.Equal(IngestOutcome.Ingested, first.Outcome);
        Assert.Equal(12, first.Tiles);
        Assert.Equal(8, first.SkippedTiles);
        Assert.Equal(12, await CountTiles(first.SceneId!.Value));

        var again = await ingestor.IngestAsync(path);
        Assert.Equal(IngestOutcome.AlreadyIngested, again.Outcome);
        Assert.Equal(first.SceneId, again.SceneId);
        Assert.Equal(12, await CountTiles(first.SceneId.Value));

        // The same bytes under another name are the same scene content: not ingested twice.
        var renamedPath = Path.Combine(_dir.FullName, "naip-renamed.tif");
        File.Copy(path, renamedPath);
        var renamed = await ingestor.IngestAsync(renamedPath);
        Assert.Equal(IngestOutcome.AlreadyIngested, renamed.Outcome);

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
        Assert.Equal(12, await CountTiles(row.Id));
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
}
