using Npgsql;
using RsCapRet.Core;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Pipeline.Tests;

/// <summary>
/// Acquisition times: raster metadata first, then a STAC item beside the file, then the file name (NAIP's _YYYYMMDD);
/// the source (and a STAC collection) is stored on the scene, and a broken STAC item fails its scene alone.
/// </summary>
public sealed class AcquisitionTimeTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-acq-");
    public void Dispose() => _dir.Delete(true);

    private static int _offset;

    /// <summary>A 64x64 RGB GeoTIFF cut from the NAIP sample (different content on each call), with optional metadata items.</summary>
    private string Scene(string name, IReadOnlyDictionary<string, string>? metadata = null) =>
        TestScenes.SmallScene(_dir.FullName, name, Interlocked.Increment(ref _offset) * 7, metadata: metadata);

    private async Task<(DateTimeOffset? At, string? Source, string? Collection, string Status, string? Error)> SceneRow(string path)
    {
        await using var cmd = db.DataSource.CreateCommand(
            "SELECT acquired_at, acquired_source, stac_collection, status, error FROM scenes WHERE path = $1 ORDER BY id DESC LIMIT 1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = Path.GetFullPath(path) });
        await using var r = await cmd.ExecuteReaderAsync();
        Assert.True(await r.ReadAsync(), $"no scene row for {path}");
        return (r.IsDBNull(0) ? null : new DateTimeOffset(r.GetDateTime(0), TimeSpan.Zero), r.IsDBNull(1) ? null : r.GetString(1),
            r.IsDBNull(2) ? null : r.GetString(2), r.GetString(3), r.IsDBNull(4) ? null : r.GetString(4));
    }

    private SceneIngestor Ingestor() => new(new CatalogStore(db.DataSource), new ColourEncoder(inputSize: 32));

    [Fact]
    public async Task MetadataTagWinsOverStacItemAndFileName()
    {
        var path = Scene("m_3807504_ne_18_060_20180815.tif", new Dictionary<string, string> { ["TIFFTAG_DATETIME"] = "2019:07:01 10:30:00" });
        await File.WriteAllTextAsync(path + ".json", """{"type":"Feature","collection":"naip","properties":{"datetime":"2021-05-04T12:00:00Z"}}""");
        var result = await Ingestor().IngestAsync(path);
        Assert.Equal(IngestOutcome.Ingested, result.Outcome);
        var row = await SceneRow(path);
        Assert.Equal(new DateTimeOffset(2019, 7, 1, 10, 30, 0, TimeSpan.Zero), row.At);
        Assert.Equal("metadata", row.Source);
        Assert.Null(row.Collection);

        // A sensor key beats the TIFF tag, which is often the file's processing time.
        var sensor = Scene("sensor_20180815.tif", new Dictionary<string, string>
        { ["TIFFTAG_DATETIME"] = "2024:01:01 00:00:00", ["ACQUISITIONDATETIME"] = "2017-06-02T09:15:00Z" });
        using var tiler = SceneTiler.Open(sensor);
        Assert.Equal(new DateTimeOffset(2017, 6, 2, 9, 15, 0, TimeSpan.Zero), tiler.Info.AcquiredAt);
        Assert.Equal("ACQUISITIONDATETIME", tiler.Info.Acquisition!.Detail);
    }

    [Fact]
    public async Task StacItemBesideTheFileGivesTimeAndCollection()
    {
        var path = Scene("m_3807504_ne_18_060_20180815.tif");
        await File.WriteAllTextAsync(path + ".json",
            """{"type":"Feature","stac_version":"1.0.0","id":"x","collection":"naip-2021","properties":{"datetime":"2021-05-04T12:00:00+02:00"}}""");
        await Ingestor().IngestAsync(path);
        var row = await SceneRow(path);
        Assert.Equal(new DateTimeOffset(2021, 5, 4, 10, 0, 0, TimeSpan.Zero), row.At);
        Assert.Equal("stac", row.Source);
        Assert.Equal("naip-2021", row.Collection);

        // datetime null: the range's start.
        var ranged = Scene("ranged.tif");
        await File.WriteAllTextAsync(ranged + ".json",
            """{"type":"Feature","properties":{"datetime":null,"start_datetime":"2016-03-01T00:00:00Z","end_datetime":"2016-03-31T00:00:00Z"}}""");
        var acq = AcquisitionTimes.FromStacItem(ranged)!;
        Assert.Equal(new DateTimeOffset(2016, 3, 1, 0, 0, 0, TimeSpan.Zero), acq.Time);
        Assert.Null(acq.StacCollection);
        Assert.Contains("start_datetime", acq.Detail);
    }

    [Fact]
    public async Task NaipFileNameGivesTheDate()
    {
        var path = Scene("m_3807504_ne_18_060_20180815.tif");
        await Ingestor().IngestAsync(path);
        var row = await SceneRow(path);
        Assert.Equal(new DateTimeOffset(2018, 8, 15, 0, 0, 0, TimeSpan.Zero), row.At);
        Assert.Equal("filename", row.Source);

        var naip = AcquisitionTimes.Pattern(AcquisitionTimes.DefaultPattern);
        Assert.Equal(new DateTimeOffset(2020, 8, 31, 0, 0, 0, TimeSpan.Zero), AcquisitionTimes.FromFileName("/x/naip_m_4709963_se_14_1_20200831.tif", naip)!.Time);
        Assert.Null(AcquisitionTimes.FromFileName("/x/scene_20181345.tif", naip));     // no month 13
        Assert.Null(AcquisitionTimes.FromFileName("/x/scene_2018.tif", naip));
        var custom = AcquisitionTimes.Pattern(@"^S2_(?<date>\d{8})T");
        Assert.Equal(new DateTimeOffset(2019, 1, 2, 0, 0, 0, TimeSpan.Zero), AcquisitionTimes.FromFileName("S2_20190102T101010_B04.tif", custom)!.Time);
        Assert.Throws<FormatException>(() => AcquisitionTimes.Pattern(@"_(\d{8})"));
    }

    [Theory]
    [InlineData("{ not json", "is not valid JSON")]
    [InlineData("""{"type":"FeatureCollection","features":[]}""", "is not a STAC item")]
    [InlineData("""{"type":"Feature","properties":{"datetime":"2021-05-04 12:00"}}""", "properties.datetime \"2021-05-04 12:00\" is not an RFC 3339 date-time")]
    [InlineData("""{"type":"Feature","properties":{"datetime":null}}""", "neither properties.datetime nor properties.start_datetime")]
    public async Task MalformedStacItemFailsItsSceneAlone(string json, string problem)
    {
        var ingestor = Ingestor();
        var good = Scene("good_20180815.tif");
        var bad = Scene("bad_20180815.tif");
        await File.WriteAllTextAsync(bad + ".json", json);

        var ex = await Assert.ThrowsAsync<RasterException>(() => ingestor.IngestAsync(bad));
        Assert.StartsWith(bad + ".json: ", ex.Message);
        Assert.Contains(problem, ex.Message);
        Assert.DoesNotContain('\n', ex.Message);
        var badRow = await SceneRow(bad);
        Assert.Equal("failed", badRow.Status);
        Assert.Contains(problem, badRow.Error);

        Assert.Equal(IngestOutcome.Ingested, (await ingestor.IngestAsync(good)).Outcome);
        Assert.Equal(("done", "filename"), ((await SceneRow(good)).Status, (await SceneRow(good)).Source));
    }

    [Fact]
    public async Task SearchAfterADateFindsTheLaterScenes()
    {
        var store = new CatalogStore(db.DataSource);
        var ingestor = new SceneIngestor(store, new ColourEncoder(inputSize: 32));
        var older = await ingestor.IngestAsync(Scene("m_3807504_ne_18_060_20180815.tif"));
        var newer = await ingestor.IngestAsync(Scene("m_3807504_ne_18_060_20200901.tif"));
        var query = new float[256];
        query[0] = 1;
        var after = await store.SearchAsync(query, 50, new SearchFilter(AcquiredAfter: new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero), Exact: true));
        Assert.NotEmpty(after);
        Assert.Contains(after, h => h.SceneId == newer.SceneId);
        Assert.DoesNotContain(after, h => h.SceneId == older.SceneId);
        Assert.All(after, h => Assert.True(h.AcquiredAt >= new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero)));
    }
}
