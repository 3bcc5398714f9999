using System.Net;
using System.Text.Json;
using ParquetSharp;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Issue 29's remaining map items over real acquisitions of the same ground: the NAIP 2018 and 2020 extracts of
/// ../shared/data (one crop of each over the same ground, and a 2018 crop of other ground). The API keeps one
/// acquisition per place when asked (latest, as_of: rscapret_search_newest), pages it exactly, filters by scene, draws
/// imagery as of a date and downloads a search as GeoJSON and GeoParquet; tests/web/map29-places.mjs checks the page
/// at 1400 x 900 and 390 x 844. Screenshots are left beside the test binary (map29-places-*.png).
/// </summary>
public sealed class MapPage29PlacesTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-map29-places-");
    public void Dispose() => _dir.Delete(true);
    private const string Query = "a farm";

    private async Task<(long Old, long Recent, long Elsewhere, string Model)> IngestAsync()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        string At(string folder, string name) { Directory.CreateDirectory(Path.Combine(_dir.FullName, folder)); return Path.Combine(_dir.FullName, folder, name); }
        // The dates come from the NAIP file names (_YYYYMMDD).
        var old = TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20180716.tif"), At("2018", "naip_m_4709963_se_14_1_20180716.tif"), 0, 0, 300, 250);
        var recent = TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20200831.tif"), At("2020", "naip_m_4709963_se_14_1_20200831.tif"), 0, 0, 300, 250);
        var elsewhere = TestScenes.Crop(TestScenes.Shared("naip_m_4709963_se_14_1_20180716.tif"), At("east", "naip_east_20180716.tif"), 560, 420, 300, 250);
        using var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu");
        var ingestor = new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder);
        var ids = new List<long>();
        foreach (var path in new[] { old, recent, elsewhere })
        {
            var result = await ingestor.IngestAsync(path);
            Assert.True(result.SceneId is not null && result.Tiles > 1, $"{path}: {result.Outcome}, {result.Tiles} tiles");
            ids.Add(result.SceneId!.Value);
        }
        return (ids[0], ids[1], ids[2], model);
    }

    [Fact]
    public async Task OneAcquisitionPerPlaceOwnImageryFlipFiltersDownloadsAndPhoneLayoutInHeadlessChromium()
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var (old, recent, elsewhere, model) = await IngestAsync();
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        var prefix = Environment.GetEnvironmentVariable("RSCAPRET_MAP29_SCREENSHOTS") is { Length: > 0 } p ? p + "-places" : Path.Combine(AppContext.BaseDirectory, "map29-places");
        string stdout;
        try
        {
            await AssertApiAsync(baseUrl, old, recent, elsewhere);
            var (code, output, errors) = await TestProcess.RunAsync("node",
                [Path.Combine(root, "tests", "web", "map29-places.mjs"), baseUrl, prefix, Query, old.ToString(), recent.ToString(), elsewhere.ToString()],
                root, TimeSpan.FromSeconds(300));
            Assert.True(code == 0, $"tests/web/map29-places.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement;
        Assert.Equal(0, f.GetProperty("stackedNewest").GetInt32());
        Assert.Equal(0, f.GetProperty("heatStacked").GetInt32());
        Assert.True(f.GetProperty("heatTiles").GetInt32() < f.GetProperty("heatAllTiles").GetInt32());
        Assert.True(f.GetProperty("heatZoom").GetDouble() >= 10);
        Assert.Contains("after", f.GetProperty("flipAfter").GetString());
        Assert.Contains("2020-08-31", f.GetProperty("flipAfter").GetString());
        Assert.Contains("2018-07-16", f.GetProperty("flipBefore").GetString());

        // The flip: the same view, the after then the before scene's imagery under the same pairs: the map's pixels differ.
        var box = f.GetProperty("mapBox1400");
        var (mx, my, mw, mh) = ((int)box.GetProperty("x").GetDouble(), (int)box.GetProperty("y").GetDouble(), (int)box.GetProperty("width").GetDouble(), (int)box.GetProperty("height").GetDouble());
        var after = Rgb(prefix + "-changes-after-1400.png");
        var before = Rgb(prefix + "-changes-before-1400.png");
        double diff = 0;
        long samples = 0;
        for (var y = my + 60; y < my + mh - 60; y += 4)
            for (var x = mx + 60; x < mx + mw - 60; x += 4, samples++)
                for (var b = 0; b < 3; b++) diff += Math.Abs(after.Pixels[b][y * after.Width + x] - before.Pixels[b][y * before.Width + x]);
        Assert.True(diff / (samples * 3) > 4, $"before and after imagery look alike: mean difference {diff / (samples * 3):F2}");

        // The phone: the map is at least half the screen, seen in the screenshot as rows of map colours (sea, land,
        // graticule, borders) across most of the width, and it grows when the list folds away.
        var phone = f.GetProperty("phone").GetProperty("map");
        var mapRows = MapRows(prefix + "-phone-390.png");
        Assert.True(mapRows >= 844 / 2, $"{mapRows} rows of the phone screenshot show the map ({phone})");
        Assert.True(MapRows(prefix + "-phone-collapsed-390.png") > mapRows);
        Assert.True(f.GetProperty("phoneTools").GetProperty("map").GetProperty("height").GetInt32() >= 422);
    }

    /// <summary>The API side: latest and as_of, exact pages, the scene filter, imagery as of a date, the downloads.</summary>
    private static async Task AssertApiAsync(string baseUrl, long old, long recent, long elsewhere)
    {
        using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
        async Task<JsonElement[]> Features(string query, bool text = true)
        {
            using var doc = JsonDocument.Parse(await http.GetStringAsync("/api/search?" + (text ? "q=" + Uri.EscapeDataString(Query) + "&" : "") + query));
            return doc.RootElement.GetProperty("features").EnumerateArray().Select(e => e.Clone()).ToArray();
        }
        static long[] Scenes(JsonElement[] rows) => rows.Select(r => r.GetProperty("properties").GetProperty("scene_id").GetInt64()).Distinct().Order().ToArray();
        static long[] Tiles(JsonElement[] rows) => rows.Select(r => r.GetProperty("properties").GetProperty("tile_id").GetInt64()).ToArray();

        var all = await Features("k=1000");
        var newest = await Features("k=1000&latest=true");
        Assert.Equal(new[] { old, recent, elsewhere }.Order(), Scenes(all));
        Assert.Equal(new[] { recent, elsewhere }.Order(), Scenes(newest));
        Assert.Equal(all.Count(r => r.GetProperty("properties").GetProperty("scene_id").GetInt64() != old), newest.Length);
        // As of a day before the 2020 acquisition: the 2018 tiles, of both places.
        Assert.Equal(new[] { old, elsewhere }.Order(), Scenes(await Features("k=1000&as_of=2020-08-30")));
        Assert.Equal(newest.Length, (await Features("k=1000&as_of=2020-08-31")).Length);
        // Pages of the newest ranking are exact stretches of one longer search; the default ranking is unchanged.
        var four = Tiles(await Features("k=4&latest=true"));
        Assert.Equal(four[2..], Tiles(await Features("k=2&offset=2&latest=true")));
        // The scene filter: that scene's tiles only, with or without latest (one scene is one acquisition).
        Assert.Equal(new[] { old }, Scenes(await Features($"k=1000&scene={old}&latest=true")));
        Assert.Equal(all.Count(r => r.GetProperty("properties").GetProperty("scene_id").GetInt64() == old), (await Features($"k=1000&scene={old}")).Length);
        // A tile's look-alikes keep one acquisition per place too, the tile itself left out.
        var source = Tiles(newest)[0];
        var alike = await Features($"k=999&latest=true&tile={source}", text: false);
        Assert.DoesNotContain(source, Tiles(alike));
        Assert.Equal(new[] { recent, elsewhere }.Order(), Scenes(alike));
        foreach (var bad in new[] { "latest=maybe", "as_of=soon", "scene=x" })
        {
            var r = await http.GetAsync("/api/search?q=a&" + bad);
            Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
            Assert.Contains("\"error\"", await r.Content.ReadAsStringAsync());
        }

        // Imagery as of 2018 at a place both acquisitions cover is the 2018 scene's own tile, not the 2020 one.
        var ring = all.First(r => r.GetProperty("properties").GetProperty("scene_id").GetInt64() == old).GetProperty("geometry").GetProperty("coordinates")[0]
            .EnumerateArray().Take(4).Select(c => (Lon: c[0].GetDouble(), Lat: c[1].GetDouble())).ToArray();
        var (z, tx, ty) = TileAt(ring.Average(c => c.Lon), ring.Average(c => c.Lat), 16);
        var newestPng = await http.GetByteArrayAsync($"/tiles/{z}/{tx}/{ty}.png");
        var asOfPng = await http.GetByteArrayAsync($"/tiles/{z}/{tx}/{ty}.png?as_of=2019-01-01");
        var oldPng = await http.GetByteArrayAsync($"/tiles/{z}/{tx}/{ty}.png?scene={old}");
        Assert.Equal(oldPng, asOfPng);
        Assert.NotEqual(newestPng, asOfPng);

        // Downloads: the same rows as the search, as GeoJSON and as GeoParquet (with its "geo" metadata).
        var firstFive = Tiles(await Features("k=5&latest=true"));
        var download = await http.GetAsync("/api/search/download?format=geojson&k=5&latest=true&q=" + Uri.EscapeDataString(Query));
        Assert.Equal(HttpStatusCode.OK, download.StatusCode);
        Assert.Equal("attachment", download.Content.Headers.ContentDisposition?.DispositionType);
        using (var doc = JsonDocument.Parse(await download.Content.ReadAsStringAsync()))
            Assert.Equal(firstFive, doc.RootElement.GetProperty("features").EnumerateArray().Select(e => e.GetProperty("properties").GetProperty("tile_id").GetInt64()));
        var parquet = await http.GetAsync("/api/search/download?format=geoparquet&k=5&latest=true&q=" + Uri.EscapeDataString(Query));
        Assert.Equal(HttpStatusCode.OK, parquet.StatusCode);
        var file = Path.Combine(Path.GetTempPath(), $"rscapret-search-{Guid.NewGuid():N}.parquet");
        await File.WriteAllBytesAsync(file, await parquet.Content.ReadAsByteArrayAsync());
        try
        {
            using var reader = new ParquetFileReader(file);
            Assert.Contains("\"primary_column\":\"geometry\"", reader.FileMetaData.KeyValueMetadata["geo"]);
            using var group = reader.RowGroup(0);
            Assert.Equal(5, group.MetaData.NumRows);
            using var tileColumn = group.Column(1).LogicalReader<long>();
            Assert.Equal(firstFive, tileColumn.ReadAll(5));
            using var geometry = group.Column(2).LogicalReader<byte[]?>();
            Assert.All(geometry.ReadAll(5), wkb => Assert.True(wkb is { Length: > 40 }));
        }
        finally { File.Delete(file); }
        var badFormat = await http.GetAsync("/api/search/download?format=csv&q=a");
        Assert.Equal(HttpStatusCode.BadRequest, badFormat.StatusCode);
    }

    private static (int Z, int X, int Y) TileAt(double lon, double lat, int z)
    {
        var n = 1 << z;
        var x = (int)Math.Floor((lon + 180) / 360 * n);
        var r = lat * Math.PI / 180;
        var y = (int)Math.Floor((1 - Math.Log(Math.Tan(r) + 1 / Math.Cos(r)) / Math.PI) / 2 * n);
        return (z, x, y);
    }

    private sealed record RgbImage(int Width, int Height, byte[][] Pixels);

    private static RgbImage Rgb(string png)
    {
        using var ds = RasterDataset.Open(png);
        var bands = Enumerable.Range(1, 3).Select(b => { var buf = new byte[ds.Width * ds.Height]; ds.Read(b, new PixelWindow(0, 0, ds.Width, ds.Height), buf.AsSpan(), ds.Width, ds.Height); return buf; }).ToArray();
        return new RgbImage(ds.Width, ds.Height, bands);
    }

    /// <summary>Rows of a screenshot where most sampled pixels have a colour of the map at world zoom (web/map.css, map.js).</summary>
    private static int MapRows(string png)
    {
        (int R, int G, int B)[] colours = [(0xb7, 0xd0, 0xe2), (0xf2, 0xef, 0xe6), (0xb8, 0xc4, 0xce), (0x8f, 0xa8, 0xb8), (0xa8, 0x9f, 0x91)];
        var image = Rgb(png);
        var rows = 0;
        for (var y = 0; y < image.Height; y++)
        {
            int hits = 0, seen = 0;
            for (var x = 5; x < image.Width - 5; x += 8, seen++)
            {
                var i = y * image.Width + x;
                var (r, g, b) = (image.Pixels[0][i], image.Pixels[1][i], image.Pixels[2][i]);
                if (colours.Any(c => Math.Abs(c.R - r) <= 10 && Math.Abs(c.G - g) <= 10 && Math.Abs(c.B - b) <= 10)) hits++;
            }
            if (hits * 2 >= seen) rows++;
        }
        return rows;
    }
}
