using System.Globalization;
using System.Net;
using System.Text.Json;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Queries;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Issue 29 end to end on the demo mosaic (12 UCM val classes × 3 images, one tile each) with the shipped model and
/// its relevance.json: each class name as a query, precision and recall of relevance ≥ 0.5; the CLI's table and
/// GeoJSON with relevance, --offset paging and --min-relevance; a model folder without relevance.json; the API's
/// offset, min_relevance and good_match.
/// </summary>
public sealed class SearchRelevanceTests(TestDatabase db, Xunit.Abstractions.ITestOutputHelper output) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-relevance-");
    public void Dispose() => _dir.Delete(true);

    private static string Root => RepositoryPaths.FindRoot();
    private static string Model => Path.Combine(Root, "models", "default");
    private static string Mosaic => Path.Combine(Root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif");

    private static readonly Dictionary<string, string> LabelOfClass = new()
    {
        ["airplane"] = "airplane", ["baseballdiamond"] = "baseball field", ["storagetanks"] = "storage tanks",
        ["denseresidential"] = "dense residential area", ["river"] = "river", ["golfcourse"] = "golf course", ["beach"] = "beach",
        ["harbor"] = "harbor", ["parkinglot"] = "parking lot", ["freeway"] = "freeway", ["tenniscourt"] = "tennis court", ["agricultural"] = "farmland",
    };

    private static List<long> TileIds(string geojson) =>
        JsonDocument.Parse(geojson).RootElement.GetProperty("features").EnumerateArray().Select(f => f.GetProperty("properties").GetProperty("tile_id").GetInt64()).ToList();

    [Fact]
    public async Task RelevanceOnTheMosaicPagingAndTheNotes()
    {
        var gsd = RsCapRet.Model.RsCapRetConfig.Load(Model).Gsd!.Value.ToString("R", CultureInfo.InvariantCulture);
        var ingest = await Run("ingest", Mosaic, "--gsd", gsd, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);
        var cells = JsonSerializer.Deserialize<List<RsCapRet.Training.Datasets.MosaicCell>>(File.ReadAllText(Path.ChangeExtension(Mosaic, ".index.json")))!
            .ToDictionary(c => (c.Row, c.Col), c => c.Class);

        // 1. Each class name as a query over the 36 tiles: precision and recall of relevance ≥ 0.5 (the model card's table).
        var store = new CatalogStore(db.DataSource);
        int flaggedAll = 0, correctAll = 0;
        using (var encoder = RsCapRetTileEncoder.Load(Model, "cpu"))
        {
            var modelId = await store.RegisterModelAsync(encoder.Identity);
            output.WriteLine("| query | flagged ≥ 0.5 | of its class (3) | precision | recall | top relevance |");
            foreach (var (cls, label) in LabelOfClass)
            {
                var vector = encoder.EmbedText(label);
                var ranked = RankedHits.Score(await store.SearchAsync(vector, 36, new SearchFilter(ModelId: modelId, Exact: true)), vector, Model);
                Assert.Null(ranked.Note);
                Assert.Equal(36, ranked.Hits.Count);
                Assert.All(ranked.Relevance, r => Assert.InRange(r!.Value, 0, 1));
                Assert.Equal(ranked.Relevance.OrderDescending(), ranked.Relevance);   // relevance follows the ranking
                var flagged = Enumerable.Range(0, 36).Where(i => ranked.Relevance[i] >= 0.5).ToList();
                var correct = flagged.Count(i => cells[(ranked.Hits[i].GridRow, ranked.Hits[i].GridCol)] == cls);
                flaggedAll += flagged.Count; correctAll += correct;
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {label} | {flagged.Count} | {correct} | {(flagged.Count == 0 ? "–" : ((double)correct / flagged.Count).ToString("F2", CultureInfo.InvariantCulture))} | {correct / 3.0:F2} | {ranked.Relevance[0]:F2} |"));
            }
            output.WriteLine($"all: {correctAll} of {flaggedAll} flagged are of the query's class; recall {correctAll} of 36");
        }
        Assert.True(flaggedAll > 0 && (double)correctAll / flaggedAll >= 0.6, $"precision {correctAll}/{flaggedAll}");

        // 2. The CLI: relevance in the table and the GeoJSON; page 2 of k = 5 is rows 6-10 of k = 10.
        var ten = await Run("search", "airplane", "--k", "10", "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(ten.Code == 0, ten.Out + ten.Err);
        var page2 = await Run("search", "airplane", "--k", "5", "--offset", "5", "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(page2.Code == 0, page2.Out + page2.Err);
        Assert.Equal(TileIds(ten.Out).Skip(5), TileIds(page2.Out));
        var page2Json = JsonDocument.Parse(page2.Out).RootElement;
        Assert.Equal(5, page2Json.GetProperty("offset").GetInt32());
        Assert.Equal(6, page2Json.GetProperty("features")[0].GetProperty("properties").GetProperty("rank").GetInt32());
        var top = JsonDocument.Parse(ten.Out).RootElement;
        Assert.True(top.GetProperty("good_match").GetBoolean(), ten.Out);
        Assert.InRange(top.GetProperty("features")[0].GetProperty("properties").GetProperty("relevance").GetDouble(), 0.5, 1);

        var table = await Run("search", "airplane", "--k", "3", "--device", "cpu", "--db", db.ConnectionString);
        Assert.Contains("relev.", table.Out);
        Assert.DoesNotContain("no good match", table.Out);
        var strict = await Run("search", "airplane", "--k", "5", "--min-relevance", "0.9999", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(strict.Code == 0, strict.Out + strict.Err);
        Assert.StartsWith("no good match: no tile reaches relevance 0.9999", strict.Out);
        Assert.Contains("  1~ ", strict.Out);
        var tooDeep = await Run("search", "airplane", "--k", "10", "--offset", "995", "--device", "cpu", "--db", db.ConnectionString);
        Assert.NotEqual(0, tooDeep.Code);
        Assert.Contains("offset + k must be at most 1000", tooDeep.Err + tooDeep.Out);

        // 3. A model folder without relevance.json: relevance null and a note, no crash (same weights, same tiles).
        var bare = Path.Combine(_dir.FullName, "bare-model");
        CopyFolder(Model, bare, skip: RelevanceCalibration.FileName);
        var noCalibration = await Run("search", "airplane", "--k", "3", "--model", bare, "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(noCalibration.Code == 0, noCalibration.Out + noCalibration.Err);
        Assert.StartsWith("note: relevance is not available", noCalibration.Out);
        var noCalibrationJson = await Run("search", "airplane", "--k", "3", "--model", bare, "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString);
        var features = JsonDocument.Parse(noCalibrationJson.Out).RootElement.GetProperty("features");
        Assert.All(features.EnumerateArray(), f => Assert.Equal(JsonValueKind.Null, f.GetProperty("properties").GetProperty("relevance").ValueKind));

        // 4. The API: offset continues the ranking; min_relevance filters; good_match for the page's note.
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, Model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var apiTen = await http.GetStringAsync("/api/search?q=airplane&k=10");
            var apiPage = await http.GetStringAsync("/api/search?q=airplane&k=5&offset=5");
            Assert.Equal(TileIds(apiTen).Skip(5), TileIds(apiPage));
            Assert.Equal(TileIds(ten.Out), TileIds(apiTen));
            var good = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=airplane&k=36&min_relevance=0.5")).RootElement;
            Assert.True(good.GetProperty("good_match").GetBoolean());
            Assert.All(good.GetProperty("features").EnumerateArray(), f => Assert.True(f.GetProperty("properties").GetProperty("relevance").GetDouble() >= 0.5));
            var none = JsonDocument.Parse(await http.GetStringAsync("/api/search?q=airplane&k=5&min_relevance=0.9999")).RootElement;
            Assert.True(none.GetProperty("below_min_relevance").GetBoolean());
            Assert.True(none.GetProperty("features")[0].GetProperty("properties").GetProperty("weak").GetBoolean());
            var bad = await http.GetAsync("/api/search?q=airplane&k=10&offset=999");
            Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
            var byTile = JsonDocument.Parse(await http.GetStringAsync($"/api/search?tile={TileIds(apiTen)[0]}&k=3&offset=1")).RootElement;
            Assert.Equal(1, byTile.GetProperty("offset").GetInt32());
            Assert.Contains("text queries", byTile.GetProperty("relevance_note").GetString());
        }
        finally { await app.StopAsync(); await app.DisposeAsync(); }
    }

    private static void CopyFolder(string from, string to, string skip)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(from, file);
            if (relative == skip) continue;
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(to, relative))!);
            File.Copy(file, Path.Combine(to, relative));
        }
    }
}
