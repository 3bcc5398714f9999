using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Scenes as a user manages them (issue 28): a direct `ingest` on the dashboard, a new plan as a new version,
/// out-of-range imagery flagged or skipped, `scenes show|delete|retry|prune`, `changes` by archive path.
/// </summary>
public sealed class SceneManagementTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-manage-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string At(string name) => Path.Combine(_dir.FullName, name);


    private Task<(int Code, string Out, string Err)> Cli(params string[] args) => CliRunner.Run([.. args, "--db", db.ConnectionString]);

    private async Task<JsonElement> ShowAsync(string scene)
    {
        var (code, output, err) = await Cli("scenes", "show", scene, "--format", "json");
        Assert.True(code == 0, err);
        return JsonDocument.Parse(output).RootElement;
    }

    [Fact]
    public async Task ADirectIngestShowsOnTheDashboardAndANewPlanIsANewVersion()
    {
        TestScenes.Crop(TestScenes.Shared("deepforest_test_tiled_epsg28992_0.25m.tif"), At("aerial.tif"), 100, 100, 500, 400);
        var (code, output, err) = await Cli("ingest", At("aerial.tif"));
        Assert.True(code == 0, err);
        Assert.Contains("coverage 100.0 %", output);

        // The run is a succeeded job of the dashboard, on the command's own "server", with the command's result.
        var monitoring = HangfireSetup.CreateStorage(db.ConnectionString).GetMonitoringApi();
        var job = Assert.Single(monitoring.SucceededJobs(0, 50), j => j.Value.Job?.Args is [string first, ..] && first == At("aerial.tif"));
        Assert.Equal(typeof(IngestSceneJob), job.Value.Job!.Type);
        Assert.Contains("ingested", job.Value.Result?.ToString());

        var again = await Cli("ingest", At("aerial.tif"));
        Assert.Contains("already ingested", again.Out);
        // The same bytes with another plan: a new version replaces the first, the path stays one scene.
        var coarser = await Cli("ingest", At("aerial.tif"), "--gsd", "0.5");
        Assert.True(coarser.Code == 0, coarser.Err);
        Assert.Contains("replaces scene", coarser.Out);
        var rows = (await ShowAsync(At("aerial.tif"))).EnumerateArray().ToList();
        var current = Assert.Single(rows, r => r.GetProperty("status").GetString() == "done");
        Assert.Equal(2, current.GetProperty("version").GetInt32());
        Assert.Equal(0.5, current.GetProperty("plan").GetProperty("gsd").GetDouble());
        var forced = await Cli("ingest", At("aerial.tif"), "--gsd", "0.5", "--force");
        Assert.True(forced.Code == 0, forced.Err);
        Assert.Contains("replaces scene", forced.Out);
    }

    [Fact]
    public async Task ImageryFarOutsideTheModelsRangeIsFlaggedOrSkipped()
    {
        // NAIP at 5 m: far coarser than the default model's 0.3-1 m.
        TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20180716.tif"), At("coarse.tif"), 0, 0, 300, 250);
        var skipped = await Cli("ingest", At("coarse.tif"), "--skip-out-of-range");
        Assert.True(skipped.Code == 0, skipped.Err);
        Assert.Contains("skipped (out of the model's range)", skipped.Out);
        var none = await Cli("scenes", "list", "--format", "json");
        Assert.DoesNotContain(At("coarse.tif"), none.Out);

        var flagged = await Cli("ingest", At("coarse.tif"));
        Assert.True(flagged.Code == 0, flagged.Err);
        var row = (await ShowAsync(At("coarse.tif")))[0];
        Assert.True(row.GetProperty("out_of_range").GetBoolean());
        Assert.Contains("far coarser", row.GetProperty("warnings")[0].GetString());
        var store = new CatalogStore(db.DataSource);
        var hits = await store.SearchAsync([1, .. new float[255]], 5, new SearchFilter(SceneId: row.GetProperty("id").GetInt64(), Exact: true));
        Assert.NotEmpty(hits);
        Assert.All(hits, h => Assert.True(h.OutOfRange));
    }

    [Fact]
    public async Task AnAllNodataSceneIsShownAsHavingNoValidPixels()
    {
        // A window past the raster's edge: gdal_translate-style crops of it are nodata throughout.
        RsCapRet.Raster.RasterWriter.WriteGeoTiff(At("blank.tif"), 450, 301, [new byte[450 * 301], new byte[450 * 301], new byte[450 * 301]],
            [500000, 0.5, 0, 5200000, 0, -0.5], 32614, nodata: 0);
        var (code, output, err) = await Cli("ingest", At("blank.tif"));
        Assert.True(code == 0, err);
        var shown = await Cli("scenes", "show", At("blank.tif"));
        Assert.True(shown.Code == 0, shown.Err);
        Assert.Contains("status: empty", shown.Out);
        Assert.Contains("coverage none (no valid pixels: the raster is nodata throughout)", shown.Out);
        Assert.DoesNotContain("ingested before coverage was recorded", shown.Out);
        var json = (await ShowAsync(At("blank.tif")))[0];
        Assert.Equal(JsonValueKind.Null, json.GetProperty("coverage").ValueKind);
        Assert.Equal("no_valid_pixels", json.GetProperty("coverage_state").GetString());
    }

    [Fact]
    public async Task ScenesAreShownDeletedRetriedAndPruned()
    {
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("a.tif"), 40, 30, 260, 240);
        File.WriteAllText(At("broken.tif"), "not a raster");
        var (code, _, err) = await Cli("ingest", At("a.tif"), At("broken.tif"));
        Assert.Equal(2, code);
        Assert.Contains("broken.tif", err);

        var failed = await Cli("scenes", "list", "--status", "failed");
        Assert.Contains(At("broken.tif"), failed.Out);
        Assert.Contains("GDAL cannot open it", failed.Out);
        var retry = await Cli("scenes", "retry");
        Assert.Equal(2, retry.Code);
        Assert.Contains("failed again", retry.Err);

        // Delete by path: its tiles go, the other scene stays; unknown scenes are a clear error.
        var id = (await ShowAsync(At("a.tif")))[0].GetProperty("id").GetInt64();
        var deleted = await Cli("scenes", "delete", At("a.tif"));
        Assert.True(deleted.Code == 0, deleted.Err);
        Assert.Contains("1 path(s), 1 version(s)", deleted.Out);
        Assert.Equal(0L, await Scalar("SELECT count(*) FROM tiles WHERE scene_id = $1", id));
        var missing = await Cli("scenes", "show", At("a.tif"));
        Assert.Equal(2, missing.Code);
        Assert.Contains("no such scene", missing.Err);

        // Prune: the failed attempt (older than 0 days) and its path row go.
        var pruned = await Cli("scenes", "prune");
        Assert.True(pruned.Code == 0, pruned.Err);
        var all = await Cli("scenes", "list", "--all");
        Assert.DoesNotContain(At("broken.tif"), all.Out);
    }

    [Fact]
    public async Task ChangesTakeArchivePathsAndInputThatCannotPairExitsTwo()
    {
        TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20180716.tif"), At("before.tif"), 0, 0, 500, 450);
        TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20200831.tif"), At("after.tif"), 0, 0, 500, 450);
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("elsewhere.tif"), 0, 0, 260, 240);
        var (code, _, err) = await Cli("index-archive", _dir.FullName, "--wait");
        Assert.True(code == 0, err);
        var pairs = await Cli("changes", "--before", At("before.tif"), "--after", At("after.tif"), "--k", "3");
        Assert.True(pairs.Code == 0, pairs.Err);
        Assert.Equal(3 + 1, pairs.Out.Trim().Split('\n').Length);   // header and three pairs
        var apart = await Cli("changes", "--before", At("before.tif"), "--after", At("elsewhere.tif"));
        Assert.Equal(2, apart.Code);
        Assert.Contains("do not overlap", apart.Err);
        var unknown = await Cli("changes", "--before", At("before.tif"), "--after", At("nowhere.tif"));
        Assert.Equal(2, unknown.Code);
        Assert.Contains("no ingested scene", unknown.Err);

        // A removed path is still found by `changes` until it is pruned.
        File.Delete(At("after.tif"));
        (code, _, err) = await Cli("index-archive", _dir.FullName, "--wait");
        Assert.True(code == 0, err);
        var removed = await Cli("changes", "--before", At("before.tif"), "--after", At("after.tif"), "--k", "3");
        Assert.True(removed.Code == 0, removed.Err);
    }

    [Fact]
    public async Task ScansOfArchivesWithSymlinkLoopsEndAndSeeEachFileOnce()
    {
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("x.tif"), 10, 20, 200, 180);
        Directory.CreateDirectory(At("sub/deeper"));
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("sub/y.tif"), 60, 20, 200, 180);
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("sub/deeper/z.tif"), 110, 20, 200, 180);
        // Two loops and a second way into a folder.
        File.CreateSymbolicLink(At("sub/up"), "..");
        File.CreateSymbolicLink(At("sub/deeper/top"), _dir.FullName);
        File.CreateSymbolicLink(At("again"), At("sub"));
        var scan = Task.Run(() => Cli("index-archive", _dir.FullName, "--wait"));
        var finished = await Task.WhenAny(scan, Task.Delay(TimeSpan.FromMinutes(5)));
        Assert.True(finished == scan, "the scan did not end");
        var (code, output, err) = await scan;
        Assert.True(code == 0, output + err);
        Assert.Contains("3 files seen", output);
        Assert.Contains("3 added", output);

        // A link to a folder outside the archive is not followed (and said), unless asked for.
        var outside = Directory.CreateTempSubdirectory("rscapret-outside-");
        try
        {
            TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), Path.Combine(outside.FullName, "o.tif"), 150, 150, 200, 180);
            File.CreateSymbolicLink(At("elsewhere"), outside.FullName);
            (code, output, err) = await Cli("index-archive", _dir.FullName, "--wait");
            Assert.True(code == 0, output + err);
            Assert.Contains($"skipped   {At("elsewhere")}: a link to", output);
            Assert.Contains("3 unchanged", output);
            (code, output, err) = await Cli("index-archive", _dir.FullName, "--wait", "--follow-links-outside");
            Assert.True(code == 0, output + err);
            Assert.Contains($"added     {At("elsewhere/o.tif")}", output);
        }
        finally { outside.Delete(recursive: true); }
    }

    private async Task<long> Scalar(string sql, long arg)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        cmd.Parameters.Add(new() { Value = arg });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }
}
