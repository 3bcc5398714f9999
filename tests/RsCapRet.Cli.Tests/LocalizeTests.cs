using System.Globalization;
using System.Net;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// `rscapret localize` and GET /api/tiles/{id}/cells (issue 30) with the shipped model on the demo mosaic (one UCM val
/// image per tile): 7 × 7 cells placed on the tile's footprint, whose mean gives the tile's own score again; one-line
/// CLI errors and JSON errors for bad ids, texts and gone imagery.
/// </summary>
public sealed class LocalizeTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-localize-");
    public void Dispose() => _dir.Delete(true);

    private static string Root => RepositoryPaths.FindRoot();

    [Fact]
    public async Task CellsCoverTheTileAndAgreeWithItsScoreOnTheCommandLineAndTheApi()
    {
        var model = Path.Combine(Root, "models", "default");
        var scene = Path.Combine(_dir.FullName, "mosaic.tif");
        File.Copy(Path.Combine(Root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif"), scene);
        var gsd = RsCapRet.Model.RsCapRetConfig.Load(model).Gsd!.Value.ToString("R", CultureInfo.InvariantCulture);
        var ingest = await Run("ingest", scene, "--gsd", gsd, "--no-captions", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(ingest.Code == 0, ingest.Out + ingest.Err);

        var search = await Run("search", "storage tanks", "--k", "1", "--exact", "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(search.Code == 0, search.Err);
        var hit = JsonDocument.Parse(search.Out).RootElement.GetProperty("features")[0];
        var tileId = hit.GetProperty("id").GetInt64();
        var tileScore = hit.GetProperty("properties").GetProperty("score").GetDouble();
        var footprint = Polygon(hit.GetProperty("geometry"));

        var geo = await Run("localize", tileId.ToString(CultureInfo.InvariantCulture), "storage tanks", "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(geo.Code == 0, geo.Err);
        var cells = AssertCells(geo.Out, footprint, tileScore);
        Assert.Equal("storage tanks", JsonDocument.Parse(geo.Out).RootElement.GetProperty("query").GetString());

        var table = await Run("localize", tileId.ToString(CultureInfo.InvariantCulture), "storage tanks", "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains("7x7 cells", table.Out);
        var hottest = cells.MaxBy(c => c.Score);
        Assert.Contains($"hottest cell: row {hottest.Row} col {hottest.Col}, score {hottest.Score.ToString("F3", CultureInfo.InvariantCulture)}", table.Out);

        // Image to cell: a tile against itself has tile score 1 (the normalised mean of its own cells).
        var self = await Run("localize", tileId.ToString(CultureInfo.InvariantCulture), "--tile", tileId.ToString(CultureInfo.InvariantCulture), "--format", "geojson",
            "--device", "cpu", "--db", db.ConnectionString);
        Assert.True(self.Code == 0, self.Err);
        Assert.Equal(1.0, JsonDocument.Parse(self.Out).RootElement.GetProperty("tile_score").GetDouble(), 4);

        // One-line errors, exit 2.
        foreach (var (args, message) in new[]
                 {
                     (new[] { "999999", "storage tanks" }, "error: no tile 999999"),
                     (new[] { "abc", "storage tanks" }, "error: tile must be a positive tile id, got 'abc'."),
                     (new[] { tileId.ToString(CultureInfo.InvariantCulture), "   " }, "error: the query text is empty"),
                     (new[] { tileId.ToString(CultureInfo.InvariantCulture) }, "error: give exactly one of: a query text, --tile ID"),
                 })
        {
            var bad = await Run(["localize", .. args, "--device", "cpu", "--db", db.ConnectionString]);
            Assert.Equal(2, bad.Code);
            Assert.Equal(message, bad.Err.Trim());
        }

        var port = LoopbackPorts.Free();
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(null));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var ok = await http.GetAsync($"/api/tiles/{tileId}/cells?q=storage%20tanks");
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
            Assert.Equal("application/geo+json", ok.Content.Headers.ContentType?.MediaType);
            var body = await ok.Content.ReadAsStringAsync();
            var apiCells = AssertCells(body, footprint, tileScore);
            Assert.Equal(cells.Select(c => c.Score), apiCells.Select(c => c.Score));
            Assert.Equal("mosaic.tif", JsonDocument.Parse(body).RootElement.GetProperty("scene").GetString());   // the name, not the path
            var like = await http.GetAsync($"/api/tiles/{tileId}/cells?tile={tileId}");
            Assert.Equal(1.0, JsonDocument.Parse(await like.Content.ReadAsStringAsync()).RootElement.GetProperty("tile_score").GetDouble(), 4);

            async Task Refused(string url, HttpStatusCode status, string error)
            {
                var response = await http.GetAsync(url);
                Assert.Equal(status, response.StatusCode);
                Assert.Equal(error, JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
            }
            await Refused("/api/tiles/999999/cells?q=storage%20tanks", HttpStatusCode.NotFound, "no tile 999999");
            await Refused($"/api/tiles/{tileId}/cells?tile=999999", HttpStatusCode.NotFound, "no tile 999999");
            await Refused($"/api/tiles/{tileId}/cells?q=%20%20", HttpStatusCode.BadRequest, "The query text is empty.");
            await Refused($"/api/tiles/{tileId}/cells", HttpStatusCode.BadRequest, "give q (the text to look for) or tile (a tile id).");
            await Refused($"/api/tiles/{tileId}/cells?q=x&tile=1", HttpStatusCode.BadRequest, "give either q (text) or tile (a tile id), not both.");
            await Refused($"/api/tiles/{tileId}/cells?tile=abc", HttpStatusCode.BadRequest, "tile must be a positive tile id, got 'abc'.");
            File.Delete(scene);
            await Refused($"/api/tiles/{tileId}/cells?q=storage%20tanks", HttpStatusCode.Gone, "mosaic.tif: does not exist");
        }
        finally { await app.StopAsync(); }
    }

    private static Polygon Polygon(JsonElement geometry)
    {
        Assert.Equal("Polygon", geometry.GetProperty("type").GetString());
        var ring = geometry.GetProperty("coordinates")[0].EnumerateArray().Select(c => new Coordinate(c[0].GetDouble(), c[1].GetDouble())).ToArray();
        return new GeometryFactory().CreatePolygon(ring);
    }

    /// <summary>49 cells, row by row, inside the tile's footprint and covering it; the tile score comes back from them.</summary>
    private static List<(int Row, int Col, double Score)> AssertCells(string geojson, Geometry footprint, double tileScore)
    {
        using var doc = JsonDocument.Parse(geojson);
        var root = doc.RootElement;
        Assert.Equal((7, 7), (root.GetProperty("rows").GetInt32(), root.GetProperty("cols").GetInt32()));
        // Re-read imagery (the thumbnail's read of the window) against the stored vector: the same score within rounding of the resampling.
        Assert.Equal(tileScore, root.GetProperty("tile_score").GetDouble(), 2);
        var features = root.GetProperty("features").EnumerateArray().ToList();
        Assert.Equal(49, features.Count);
        var cells = new List<(int, int, double)>();
        double area = 0;
        for (var i = 0; i < 49; i++)
        {
            var p = features[i].GetProperty("properties");
            var (row, col) = (p.GetProperty("row").GetInt32(), p.GetProperty("col").GetInt32());
            Assert.Equal((i / 7, i % 7), (row, col));
            var cell = Polygon(features[i].GetProperty("geometry"));
            Assert.True(footprint.Buffer(1e-9).Contains(cell), $"cell {row},{col} lies outside the tile");
            area += cell.Area;
            // Row 0 is the top of the tile (north on a north-up scene), col 0 its west.
            if (row == 0 && col == 0) Assert.True(cell.Centroid.Y > footprint.Centroid.Y && cell.Centroid.X < footprint.Centroid.X);
            var score = p.GetProperty("score").GetDouble();
            Assert.InRange(score, -1, 1);
            cells.Add((row, col, score));
        }
        Assert.Equal(footprint.Area, area, footprint.Area * 1e-6);
        return cells;
    }
}
