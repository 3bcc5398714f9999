using System.Globalization;
using System.Net;
using System.Text.Json;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Issue 29, item 1: `changes --toward` says per pair whether the after tile matches the text at all (its calibrated
/// relevance, ≥ 0.5), on the demo mosaic sample (12 UCM val classes × 3 images, one tile each at the model's GSD)
/// with the shipped model and its relevance.json: the before scene is the mosaic, the after scene the mosaic with a
/// farmland cell replaced by an airplane cell's pixels. On the command line (table and GeoJSON), over HTTP, and in
/// the map's changes view (tests/web/changes-relevance.mjs; screenshots beside the test binary).
/// </summary>
public sealed class ChangesRelevanceTests(TestDatabase db, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-changes-relevance-");
    public void Dispose() => _dir.Delete(true);

    private static string Root => RepositoryPaths.FindRoot();
    private static string Model => Path.Combine(Root, "models", "default");
    private static string Mosaic => Path.Combine(Root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif");
    private const int Cell = 256;

    /// <summary>The mosaic with cell <paramref name="to"/> overwritten by the pixels of cell <paramref name="from"/>.</summary>
    private string MosaicWithCellCopied((int Row, int Col) from, (int Row, int Col) to)
    {
        using var ds = RasterDataset.Open(Mosaic);
        var bands = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[ds.Width * ds.Height];
            ds.Read(b, new PixelWindow(0, 0, ds.Width, ds.Height), buf.AsSpan(), ds.Width, ds.Height);
            for (var y = 0; y < Cell; y++)
                Array.Copy(buf, (from.Row * Cell + y) * ds.Width + from.Col * Cell, buf, (to.Row * Cell + y) * ds.Width + to.Col * Cell, Cell);
            return buf;
        }).ToArray();
        var path = Path.Combine(_dir.FullName, "ucm_val_mosaic_after.tif");
        RasterWriter.WriteGeoTiff(path, ds.Width, ds.Height, bands, ds.GeoTransform, ds.Crs!.Epsg);
        return path;
    }

    private static JsonElement Properties(JsonElement feature) => feature.GetProperty("properties");

    [Fact]
    public async Task EachPairSaysWhetherItsAfterTileMatchesTheTowardText()
    {
        var cells = JsonSerializer.Deserialize<List<RsCapRet.Training.Datasets.MosaicCell>>(File.ReadAllText(Path.ChangeExtension(Mosaic, ".index.json")))!;
        var airplane = cells.First(c => c.Class == "airplane");
        var farmland = cells.First(c => c.Class == "agricultural");
        var after = MosaicWithCellCopied((airplane.Row, airplane.Col), (farmland.Row, farmland.Col));
        var gsd = RsCapRet.Model.RsCapRetConfig.Load(Model).Gsd!.Value.ToString("R", CultureInfo.InvariantCulture);
        foreach (var scene in new[] { Mosaic, after })
        {
            var ingest = await Run("ingest", scene, "--gsd", gsd, "--device", "cpu", "--db", db.ConnectionString);
            Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);
        }

        // "airplane": the replaced cell moved most toward it and its after tile matches; the after tiles that match
        // are the airplane cells (three unchanged, one new), whatever their gain.
        var toward = await Run("changes", "--before", Mosaic, "--after", after, "--toward", "airplane", "--k", "36", "--format", "geojson",
            "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(toward.Code == 0, toward.Out + toward.Err);
        using var doc = JsonDocument.Parse(toward.Out);
        var root = doc.RootElement;
        Assert.Equal("airplane", root.GetProperty("toward").GetString());
        Assert.True(root.GetProperty("any_match").GetBoolean());
        Assert.False(root.TryGetProperty("relevance_note", out _));
        var features = root.GetProperty("features").EnumerateArray().ToList();
        Assert.Equal(36, features.Count);
        foreach (var f in features)
        {
            var relevance = Properties(f).GetProperty("after_relevance").GetDouble();
            Assert.InRange(relevance, 0, 1);
            Assert.Equal(relevance >= 0.5, Properties(f).GetProperty("matches").GetBoolean());
        }
        var top = Properties(features[0]);
        Assert.True(top.GetProperty("toward_gain").GetDouble() > 0.1, top.ToString());
        Assert.True(top.GetProperty("matches").GetBoolean(), top.ToString());
        var matching = features.Where(f => Properties(f).GetProperty("matches").GetBoolean()).ToList();
        output.WriteLine($"airplane: {matching.Count} of 36 after tiles match; top pair gain {top.GetProperty("toward_gain").GetDouble():F3}, " +
                         $"after relevance {top.GetProperty("after_relevance").GetDouble():F3}");
        Assert.Equal(cells.Count(c => c.Class == "airplane") + 1, matching.Count);
        // Pairs that did not move (gain 0) still say whether their after tile shows the text: the unchanged airplane cells do.
        Assert.Contains(matching, f => Math.Abs(Properties(f).GetProperty("toward_gain").GetDouble()) < 1e-4);

        var table = await Run("changes", "--before", Mosaic, "--after", after, "--toward", "airplane", "--k", "3", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(table.Code == 0, table.Err);
        output.WriteLine(table.Out);
        var lines = table.Out.Split('\n');
        Assert.Contains("after relev.", lines[0]);
        Assert.Contains("match", lines[0]);
        Assert.Matches(@"^\s+1\s+\S+\s+\S+\s+\d+\s+\d+\s+[01]\.\d{3}\s+yes\s", lines[1]);
        Assert.DoesNotContain("no pair's after tile matches", table.Out);

        // "freeway" (no mosaic tile reaches 0.5 for it: the model card's table): every pair says no, and the table
        // and the GeoJSON say that no pair's after tile matches.
        var none = await Run("changes", "--before", Mosaic, "--after", after, "--toward", "freeway", "--k", "36", "--format", "geojson",
            "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(none.Code == 0, none.Err);
        using (var noneDoc = JsonDocument.Parse(none.Out))
        {
            Assert.False(noneDoc.RootElement.GetProperty("any_match").GetBoolean());
            Assert.All(noneDoc.RootElement.GetProperty("features").EnumerateArray(), f => Assert.False(Properties(f).GetProperty("matches").GetBoolean()));
        }
        var noneTable = await Run("changes", "--before", Mosaic, "--after", after, "--toward", "freeway", "--k", "3", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(noneTable.Code == 0, noneTable.Err);
        output.WriteLine(noneTable.Out);
        Assert.StartsWith("no pair's after tile matches \"freeway\": none reaches relevance 0.5", noneTable.Out);
        Assert.DoesNotContain(" yes ", noneTable.Out);

        // Without a toward text nothing is matched: the fields are null.
        var plain = await Run("changes", "--before", Mosaic, "--after", after, "--k", "2", "--format", "geojson", "--db", db.ConnectionString);
        Assert.True(plain.Code == 0, plain.Err);
        using (var plainDoc = JsonDocument.Parse(plain.Out))
        {
            Assert.Equal(JsonValueKind.Null, plainDoc.RootElement.GetProperty("any_match").ValueKind);
            Assert.Equal(JsonValueKind.Null, Properties(plainDoc.RootElement.GetProperty("features")[0]).GetProperty("matches").ValueKind);
        }

        // The API and the map's changes view (the host serves the shipped model, so relevance comes from its relevance.json).
        var (b, a) = (top.GetProperty("before").GetProperty("scene_id").GetInt64(), top.GetProperty("after").GetProperty("scene_id").GetInt64());
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, Model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var response = await http.GetAsync($"/api/changes?before={b}&after={a}&toward=airplane&k=36");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            using var api = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.True(api.RootElement.GetProperty("any_match").GetBoolean());
            Assert.Equal(features.Select(f => Properties(f).GetProperty("after_relevance").GetDouble()),
                api.RootElement.GetProperty("features").EnumerateArray().Select(f => Properties(f).GetProperty("after_relevance").GetDouble()));
            using var apiNone = JsonDocument.Parse(await http.GetStringAsync($"/api/changes?before={b}&after={a}&toward=freeway&k=5"));
            Assert.False(apiNone.RootElement.GetProperty("any_match").GetBoolean());

            await BrowserTools.AssertInstalledAsync(Root);
            var prefix = Path.Combine(AppContext.BaseDirectory, "changes-relevance");
            var (code, stdout, errors) = await TestProcess.RunAsync("node",
                [Path.Combine(Root, "tests", "web", "changes-relevance.mjs"), baseUrl, prefix, b.ToString(CultureInfo.InvariantCulture), a.ToString(CultureInfo.InvariantCulture)],
                Root, TimeSpan.FromSeconds(180));
            Assert.True(code == 0, $"tests/web/changes-relevance.mjs failed (exit {code}):\n{errors}\n{stdout}");
            output.WriteLine(stdout);
            using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
            var matchTexts = facts.RootElement.GetProperty("matchTexts").EnumerateArray().Select(t => t.GetString()!).ToList();
            Assert.Matches(@"^after tile matches the text \(relevance 0\.\d\d\)$", matchTexts[0]);
            Assert.Contains("No pair's after tile matches “freeway”", facts.RootElement.GetProperty("noneStatus").GetString());
            Assert.All(facts.RootElement.GetProperty("noneMatchTexts").EnumerateArray(), t => Assert.StartsWith("after tile does not match the text", t.GetString()));
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public void TheTableSaysWhyRelevanceIsMissingAndNothingElseChangesWithoutIt()
    {
        var change = new RsCapRet.Storage.TileChange(1, 2, 10, 11, "a field", "houses", 0.3, 0.1, 0.9, null, null, null, AfterTowardDistance: 0.4);
        var result = new RsCapRet.Storage.ChangeResult([change], []);
        var missing = Queries.RankedChanges.Score(result, "houses", new float[256], calibration: null);
        Assert.Null(missing.AnyMatch);
        Assert.Null(missing.Matches(0));
        Assert.StartsWith("note: relevance is not available", Queries.ChangeOutput.Table(missing));
        using var json = JsonDocument.Parse(Queries.ChangeOutput.GeoJson(missing));
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("any_match").ValueKind);
        Assert.Contains("relevance.json", json.RootElement.GetProperty("relevance_note").GetString());

        // A calibration (p = σ(-5 + 10·s), no background) on the after tile's score 0.6: 0.731, a match.
        var calibration = new Queries.RelevanceCalibration(-5, 10, 0, []);
        var scored = Queries.RankedChanges.Score(result, "houses", new float[256], calibration);
        Assert.Equal(0.7311, scored.AfterRelevance[0]);
        Assert.True(scored.Matches(0));
        Assert.True(scored.AnyMatch);
        Assert.Null(scored.NoMatchLine);
        var far = Queries.RankedChanges.Score(new RsCapRet.Storage.ChangeResult([change with { AfterTowardDistance = 0.7 }], []), "houses", new float[256], calibration);
        Assert.False(far.AnyMatch);
        Assert.StartsWith("no pair's after tile matches \"houses\"", Queries.ChangeOutput.Table(far));
    }
}
