using RsCapRet.TestSupport;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// `rscapret inspect` shows a scene's acquisition time and its source, and `rscapret search --after` over scenes whose
/// only date is in their NAIP-style file name now returns rows (before, every such filter returned nothing).
/// </summary>
public sealed class AcquisitionSearchTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-acq-cli-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task InspectShowsTheTimeAndSearchAfterReturnsRows()
    {
        var older = TestScenes.SmallScene(_dir.FullName, "m_4709963_se_14_060_20180815.tif", 0);
        var newer = TestScenes.SmallScene(_dir.FullName, "m_4709963_se_14_060_20200831.tif", 80);
        // A 2019 acquisition of the 2018 scene's ground (other content): one acquisition per place keeps it over 2018.
        var sameGround = TestScenes.SmallScene(_dir.FullName, "m_4709963_se_14_060_20190701.tif", 0, contentOffset: 40);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));

        var inspect = await Run("inspect", older);
        Assert.True(inspect.Code == 0, inspect.Err);
        Assert.Contains("acquired: 2018-08-15 00:00:00Z (from filename:", inspect.Out);
        var json = await Run("inspect", newer, "--json");
        Assert.Contains("\"acquired_source\": \"filename\"", json.Out);
        Assert.Contains("\"acquired_at\": \"2020-08-31T00:00:00.0000000Z\"", json.Out);
        // --acquired-pattern replaces the NAIP default; one without a date group is a usage error.
        var custom = await Run("inspect", older, "--json", "--acquired-pattern", @"^scene_(?<date>\d{8})");
        Assert.True(custom.Code == 0, custom.Err);
        Assert.Contains("\"acquired_at\": null", custom.Out);   // no match, and the NAIP default no longer applies
        var custom2 = await Run("inspect", older, "--acquired-pattern", @"_060_(?<date>\d{8})\.tif$");
        Assert.Contains("acquired: 2018-08-15 00:00:00Z (from filename: _060_", custom2.Out);
        var bad = await Run("inspect", older, "--acquired-pattern", @"_(\d{8})");
        Assert.NotEqual(0, bad.Code);
        Assert.Contains("--acquired-pattern: '_(\\d{8})' has no (?<date>...) group", bad.Err);

        foreach (var scene in new[] { older, newer, sameGround })
        {
            var ingest = await Run("ingest", scene, "--model", model, "--device", "cpu", "--db", db.ConnectionString);
            Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);
        }

        var after = await Run("search", "fields", "--after", "2019-01-01", "--k", "50", "--format", "geojson",
            "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(after.Code == 0, after.Err);
        Assert.Contains("20200831", after.Out);
        Assert.DoesNotContain("20180815", after.Out);
        Assert.Contains("2020-08-31T00:00:00", after.Out);

        var before = await Run("search", "fields", "--before", "2019-01-01", "--k", "50", "--format", "geojson",
            "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(before.Code == 0, before.Err);
        Assert.Contains("20180815", before.Out);
        Assert.DoesNotContain("20200831", before.Out);

        // One acquisition per place (the map's latest / as_of): --latest hides 2018 under 2019; --as-of 2018-12-31
        // shows the ground as it was then (2018, and 2020's other ground not yet acquired); --scene keeps one scene.
        var latest = await Run("search", "fields", "--latest", "--k", "50", "--format", "geojson", "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(latest.Code == 0, latest.Err);
        Assert.Contains("20190701", latest.Out);
        Assert.Contains("20200831", latest.Out);
        Assert.DoesNotContain("20180815", latest.Out);
        var asOf = await Run("search", "fields", "--as-of", "2018-12-31", "--k", "50", "--format", "geojson", "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(asOf.Code == 0, asOf.Err);
        Assert.Contains("20180815", asOf.Out);
        Assert.DoesNotContain("20190701", asOf.Out);
        Assert.DoesNotContain("20200831", asOf.Out);
        var sceneId = System.Text.Json.JsonDocument.Parse(asOf.Out).RootElement.GetProperty("features")[0].GetProperty("properties").GetProperty("scene_id").GetInt64();
        var oneScene = await Run("search", "fields", "--scene", sceneId.ToString(System.Globalization.CultureInfo.InvariantCulture), "--k", "50", "--format", "geojson",
            "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(oneScene.Code == 0, oneScene.Err);
        Assert.Contains("20180815", oneScene.Out);
        Assert.DoesNotContain("20190701", oneScene.Out);
        var hybridLatest = await Run("search", "fields", "--latest", "--mode", "hybrid", "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.Equal(2, hybridLatest.Code);
        Assert.Contains("--mode hybrid does not combine with --latest", hybridLatest.Err);
        var badDate = await Run("search", "fields", "--as-of", "last year", "--model", model, "--device", "cpu", "--db", db.ConnectionString);
        Assert.Equal(2, badDate.Code);
        Assert.Contains("as_of must be a date", badDate.Err);
    }
}
