using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// A catalogue that mirrors a living archive (issue 28): a folder of real rasters indexed with `index-archive --wait`,
/// then edited, deleted, renamed and copied, and indexed again, while a searcher watches the edited file's ground.
/// </summary>
public sealed class ArchiveLifecycleTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private static readonly string[] FirstScanScenes = ["aerial.tif", "naip.tif", "sub/doomed.tif", "tiny.tif"];
    private static readonly string[] SecondScanScenes = ["aerial.tif", "aerial-copy.tif", "naip.tif", "tiny-renamed.tif"];

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-archive-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string At(string name) => Path.Combine(_dir.FullName, name);


    private async Task<List<JsonElement>> ListAsync(params string[] extra)
    {
        var (code, output, err) = await CliRunner.Run(["scenes", "list", "--format", "json", "--db", db.ConnectionString, .. extra]);
        Assert.True(code == 0, err);
        return JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
    }

    private async Task<Dictionary<(int, int), long>> TileIdsAsync(long sceneId)
    {
        var ids = new Dictionary<(int, int), long>();
        await using var cmd = db.DataSource.CreateCommand("SELECT grid_row, grid_col, id FROM tiles WHERE scene_id = $1");
        cmd.Parameters.Add(new() { Value = sceneId });
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) ids[(r.GetInt32(0), r.GetInt32(1))] = r.GetInt64(2);
        return ids;
    }

    [Fact]
    public async Task EditsDeletesRenamesAndCopiesAreMirroredAndSearchesNeverSeeBothVersionsOrNeither()
    {
        // Sizes that are not multiples of the 224-px tile, and one smaller than a tile.
        TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20180716.tif"), At("naip.tif"), 0, 0, 700, 500);
        TestScenes.Crop(TestScenes.Shared("deepforest_test_tiled_epsg28992_0.25m.tif"), At("aerial.tif"), 0, 0, 1000, 700);
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("tiny.tif"), 100, 100, 150, 120);
        Directory.CreateDirectory(At("sub"));
        TestScenes.Crop(TestScenes.Shared("neon_OSBS_029_utm17n_0.1m.tif"), At("sub/doomed.tif"), 0, 0, 300, 260);

        var (code, output, err) = await CliRunner.Run("index-archive", _dir.FullName, "--wait", "--db", db.ConnectionString);
        Assert.True(code == 0, output + err);
        Assert.Contains("4 added", output);
        var first = await ListAsync();
        Assert.Equal(FirstScanScenes.Select(At).Order(), first.Select(s => s.GetProperty("path").GetString()).Order());
        Assert.All(first, s => Assert.True(s.GetProperty("coverage").GetDouble() >= 0.995, $"{s}"));
        var tiny = first.Single(s => s.GetProperty("path").GetString() == At("tiny.tif"));
        Assert.Equal(1, tiny.GetProperty("tiles").GetInt32());   // smaller than a tile, still tiled
        var tinyTiles = await TileIdsAsync(tiny.GetProperty("id").GetInt64());
        var naipOld = first.Single(s => s.GetProperty("path").GetString() == At("naip.tif")).GetProperty("id").GetInt64();

        // A second scan with nothing changed hashes nothing and changes nothing.
        (code, output, err) = await CliRunner.Run("index-archive", _dir.FullName, "--wait", "--db", db.ConnectionString);
        Assert.True(code == 0, output + err);
        Assert.Contains("(0 hashed)", output);
        Assert.Contains("4 unchanged", output);

        // Edit one (new bytes, same place), delete one, rename one, copy one.
        File.Delete(At("naip.tif"));
        TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20200831.tif"), At("naip.tif"), 0, 0, 700, 500);
        File.Delete(At("sub/doomed.tif"));
        File.Move(At("tiny.tif"), At("tiny-renamed.tif"));
        File.Copy(At("aerial.tif"), At("aerial-copy.tif"));

        // A searcher over the edited file's ground, throughout its re-ingest: each answer is one version, whole.
        var store = new CatalogStore(db.DataSource);
        var naipArea = new GeometryFactory(new PrecisionModel(), 4326).ToGeometry(new Envelope(-99.19, -99.12, 47.0, 47.04));
        var query = new float[256];
        query[0] = 1;
        var seen = new List<long[]>();
        using var stop = new CancellationTokenSource();
        var searcher = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                var hits = await store.SearchAsync(query, 200, new SearchFilter(Area: naipArea, Exact: true));
                lock (seen) seen.Add(hits.Select(h => h.SceneId).Distinct().Order().ToArray());
            }
        });
        (code, output, err) = await CliRunner.Run("index-archive", _dir.FullName, "--wait", "--db", db.ConnectionString);
        await stop.CancelAsync();
        await searcher;
        Assert.True(code == 0, output + err);
        Assert.Contains($"changed   {At("naip.tif")}", output);
        Assert.Contains($"removed   {At("sub/doomed.tif")}", output);
        Assert.Contains($"moved     {At("tiny-renamed.tif")} (from {At("tiny.tif")}", output);
        Assert.Contains($"added     {At("aerial-copy.tif")}: same bytes as scene", output);

        var second = await ListAsync();
        Assert.Equal(SecondScanScenes.Select(At).Order(),
            second.Select(s => s.GetProperty("path").GetString()).Order());
        var naipNew = second.Single(s => s.GetProperty("path").GetString() == At("naip.tif"));
        Assert.NotEqual(naipOld, naipNew.GetProperty("id").GetInt64());
        Assert.Equal(2, naipNew.GetProperty("version").GetInt32());
        // The renamed file kept its version and tile ids; the copy shares its original's version.
        var renamed = second.Single(s => s.GetProperty("path").GetString() == At("tiny-renamed.tif"));
        Assert.Equal(tinyTiles, await TileIdsAsync(renamed.GetProperty("id").GetInt64()));
        Assert.Equal(second.Single(s => s.GetProperty("path").GetString() == At("aerial.tif")).GetProperty("id").GetInt64(),
            second.Single(s => s.GetProperty("path").GetString() == At("aerial-copy.tif")).GetProperty("id").GetInt64());

        // Never both versions, never neither; the old one first, the new one last.
        Assert.NotEmpty(seen);
        Assert.All(seen, ids => Assert.True(ids.Length == 1, $"a search saw scenes [{string.Join(",", ids)}]"));
        Assert.Equal(naipOld, seen[0][0]);
        Assert.Equal(naipNew.GetProperty("id").GetInt64(), seen[^1][0]);

        // The copy's tiles come back once; the deleted file's are out of search; `--all` still lists it as removed.
        var everywhere = await store.SearchAsync(query, 500, new SearchFilter(Exact: true));
        Assert.Equal(everywhere.Count, everywhere.Select(h => h.TileId).Distinct().Count());
        var removed = (await ListAsync("--all")).Where(s => s.GetProperty("status").GetString() == "removed").Select(s => s.GetProperty("path").GetString());
        Assert.Contains(At("sub/doomed.tif"), removed);
        Assert.DoesNotContain(everywhere, h => h.ScenePath == At("sub/doomed.tif"));
    }
}
