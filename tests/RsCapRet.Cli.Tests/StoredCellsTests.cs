using System.Globalization;
using System.Net;
using System.Text.Json;
using NetTopologySuite.Geometries;
using RsCapRet.Core;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// Issue 30, stored cells and hot cells: `ingest --cells` keeps every tile's 49 cell vectors (a version of its own,
/// deleted with it); `search --localize` and `GET /api/search?localize=1` give each result its hottest cells merged
/// into a polygon inside its footprint, from the imagery without stored cells and from the stored cells with them
/// (then even when the scene file is gone); `localize` and the cells endpoint use stored cells too.
/// </summary>
public sealed class StoredCellsTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-stored-cells-");
    public void Dispose() => _dir.Delete(true);

    private static string Root => RepositoryPaths.FindRoot();

    [Fact]
    public async Task IngestWithCellsStoresThemAndSearchResultsGetTheirHotCells()
    {
        var model = Path.Combine(Root, "models", "default");
        var scene = Path.Combine(_dir.FullName, "mosaic.tif");
        File.Copy(Path.Combine(Root, "samples", "scenes", "ucm_val_mosaic_epsg32610_0.3m.tif"), scene);
        var gsd = RsCapRet.Model.RsCapRetConfig.Load(model).Gsd!.Value.ToString("R", CultureInfo.InvariantCulture);
        string[] common = ["--device", "cpu", "--db", db.ConnectionString];
        var store = new CatalogStore(db.DataSource);

        // Without stored cells: the hot cells come from the re-read imagery.
        var plain = await Run(["ingest", scene, "--gsd", gsd, "--no-captions", .. common]);
        Assert.True(plain.Code == 0, plain.Out + plain.Err);
        Assert.Equal(0, (await store.CellStorageAsync()).TilesWithCells);
        var fromImagery = await SearchLocalized(common);
        Assert.All(fromImagery, r => Assert.Equal("imagery", r.From));

        // With --cells: another plan, so a new version of the path, and one row of cells per tile.
        var withCells = await Run(["ingest", scene, "--gsd", gsd, "--no-captions", "--cells", .. common]);
        Assert.True(withCells.Code == 0, withCells.Out + withCells.Err);
        Assert.Contains("ingested (replaces scene", withCells.Out);
        var storage = await store.CellStorageAsync();
        Assert.Equal(36, storage.TilesWithCells);
        Assert.InRange(storage.BytesPerTile, 49 * 256 * 2, 49 * 256 * 2 * 1.5);
        var fromStore = await SearchLocalized(common);
        Assert.All(fromStore, r => Assert.Equal("stored", r.From));
        // The same tiles rank the same, and stored and re-read cells find the same places (resampling aside).
        Assert.Equal(fromImagery.Select(r => r.Score), fromStore.Select(r => r.Score));
        foreach (var (a, b) in fromImagery.Zip(fromStore))
            Assert.True(a.Hot.Intersection(b.Hot).Area >= 0.5 * Math.Min(a.Hot.Area, b.Hot.Area), $"tile {b.TileId}: stored and re-read hot cells lie apart");

        // localize uses the stored cells: its tile score is the stored vector's, i.e. the search's own score.
        var best = fromStore[0];
        var id = best.TileId.ToString(CultureInfo.InvariantCulture);
        var geo = await Run(["localize", id, "storage tanks", "--format", "geojson", .. common]);
        Assert.True(geo.Code == 0, geo.Err);
        var root = JsonDocument.Parse(geo.Out).RootElement;
        Assert.Equal("stored", root.GetProperty("cells_from").GetString());
        Assert.Equal(best.Score, root.GetProperty("tile_score").GetDouble(), 5);
        Assert.Equal(49, root.GetProperty("features").GetArrayLength());
        var cellArea = root.GetProperty("features").EnumerateArray().Sum(f => Read(f.GetProperty("geometry")).Area);
        Assert.Equal(best.Footprint.Area, cellArea, best.Footprint.Area * 1e-9);

        // Bounded: at most 20 results localised at once.
        var tooMany = await Run(["search", "storage tanks", "--k", "21", "--localize", .. common]);
        Assert.Equal(2, tooMany.Code);
        Assert.Equal("error: --localize takes --k 20 at most, got 21", tooMany.Err.Trim());
        var table = await Run(["search", "storage tanks", "--k", "2", "--localize", .. common]);
        Assert.True(table.Code == 0, table.Err);
        Assert.Contains("hot cells (stored): r", table.Out);

        // Stored cells need no imagery: with the file gone, the API still localises (search results and cells).
        File.Delete(scene);
        var port = LoopbackPorts.Free();
        var app = RsCapRetWebHost.Build(db.ConnectionString, $"http://127.0.0.1:{port}", model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(null));
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var response = await http.GetAsync("/api/search?q=storage%20tanks&k=3&exact=true&localize=1");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var apiBody = await response.Content.ReadAsStringAsync();
            var api = HotCellsOf(apiBody);
            var sceneId = JsonDocument.Parse(apiBody).RootElement.GetProperty("features")[0].GetProperty("properties").GetProperty("scene_id").GetInt64();
            // Heat map cells=1: every stored tile drawn as its 49 cells, each cell with its own score.
            var heat = JsonDocument.Parse(await http.GetStringAsync($"/api/heatmap?q=storage%20tanks&scene={sceneId}&cells=1")).RootElement;
            Assert.Equal(36, heat.GetProperty("cell_tiles").GetInt32());
            Assert.Equal(36 * 49, heat.GetProperty("features").GetArrayLength());
            var cellOfBest = heat.GetProperty("features").EnumerateArray().First(f => f.GetProperty("properties").GetProperty("tile_id").GetInt64() == best.TileId);
            Assert.Equal(best.Score, cellOfBest.GetProperty("properties").GetProperty("tile_score").GetDouble(), 5);
            var wholeTiles = JsonDocument.Parse(await http.GetStringAsync($"/api/heatmap?q=storage%20tanks&scene={sceneId}")).RootElement;
            Assert.Equal(36, wholeTiles.GetProperty("features").GetArrayLength());
            Assert.Equal(fromStore.Select(r => (r.TileId, r.From)), api.Select(r => (r.TileId, r.From)));
            foreach (var (a, b) in fromStore.Zip(api)) Assert.True(a.Hot.EqualsExact(b.Hot, 1e-9));
            var cells = await http.GetAsync($"/api/tiles/{id}/cells?q=storage%20tanks");
            Assert.Equal(HttpStatusCode.OK, cells.StatusCode);
            Assert.Equal("stored", JsonDocument.Parse(await cells.Content.ReadAsStringAsync()).RootElement.GetProperty("cells_from").GetString());
            var refused = await http.GetAsync("/api/search?q=storage%20tanks&k=21&localize=1");
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            Assert.Equal("localize=1 takes k 20 at most, got 21.", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString());
            var badFlag = await http.GetAsync("/api/search?q=storage%20tanks&localize=yes");
            Assert.Equal(HttpStatusCode.BadRequest, badFlag.StatusCode);
        }
        finally { await app.StopAsync(); }

        // The cells go with their version.
        var delete = await Run("scenes", "delete", scene, "--db", db.ConnectionString);
        Assert.True(delete.Code == 0, delete.Out + delete.Err);
        Assert.Equal(0, (await store.CellStorageAsync()).TilesWithCells);
    }

    private sealed record Localized(long TileId, double Score, Geometry Footprint, Geometry Hot, string From);

    private static async Task<List<Localized>> SearchLocalized(string[] common)
    {
        var search = await Run(["search", "storage tanks", "--k", "3", "--exact", "--localize", "--format", "geojson", .. common]);
        Assert.True(search.Code == 0, search.Err);
        return HotCellsOf(search.Out);
    }

    /// <summary>Each result's hot cells: at least one cell, inside the result's footprint, the best cell's score at or above the threshold.</summary>
    private static List<Localized> HotCellsOf(string geojson)
    {
        var list = new List<Localized>();
        foreach (var f in JsonDocument.Parse(geojson).RootElement.GetProperty("features").EnumerateArray())
        {
            var p = f.GetProperty("properties");
            var hot = p.GetProperty("hot_cells");
            Assert.Equal(JsonValueKind.Object, hot.ValueKind);
            var footprint = Read(f.GetProperty("geometry"));
            var area = Read(hot.GetProperty("geometry"));
            Assert.True(footprint.Buffer(1e-9).Contains(area), "hot cells outside the tile");
            var count = hot.GetProperty("cells").GetArrayLength();
            Assert.InRange(count, 1, 49);
            // Each cell is 1/49 of the tile: the merged area is exactly the cells'.
            Assert.Equal(footprint.Area * count / 49, area.Area, footprint.Area * 1e-6);
            Assert.True(hot.GetProperty("best_score").GetDouble() >= hot.GetProperty("threshold").GetDouble());
            list.Add(new Localized(p.GetProperty("tile_id").GetInt64(), p.GetProperty("score").GetDouble(), footprint, area, hot.GetProperty("from").GetString()!));
        }
        Assert.NotEmpty(list);
        return list;
    }

    private static readonly GeometryFactory Factory = new();

    /// <summary>A GeoJSON Polygon or MultiPolygon (what cells and hot cells are).</summary>
    private static Geometry Read(JsonElement geometry)
    {
        LinearRing Ring(JsonElement ring) => Factory.CreateLinearRing(ring.EnumerateArray().Select(c => new Coordinate(c[0].GetDouble(), c[1].GetDouble())).ToArray());
        Polygon PolygonOf(JsonElement rings) => Factory.CreatePolygon(Ring(rings[0]), rings.EnumerateArray().Skip(1).Select(Ring).ToArray());
        var coordinates = geometry.GetProperty("coordinates");
        return geometry.GetProperty("type").GetString() switch
        {
            "Polygon" => PolygonOf(coordinates),
            "MultiPolygon" => Factory.CreateMultiPolygon(coordinates.EnumerateArray().Select(PolygonOf).ToArray()),
            var other => throw new Xunit.Sdk.XunitException($"unexpected geometry {other}"),
        };
    }
}
