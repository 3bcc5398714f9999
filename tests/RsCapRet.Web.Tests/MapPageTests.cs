using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// The search page at / of `rscapret serve`: served from the binary, and driven in headless Chromium
/// (tests/web/map-page.mjs, playwright-core with Debian's chromium) against a live database with an ingested scene.
/// </summary>
public sealed class MapPageTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    /// <summary>The footprint colour of web/map.js: the screenshot must show it inside the map.</summary>
    private static readonly (byte R, byte G, byte B) FootprintColour = (0xff, 0x00, 0xff);

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-map-");
    public void Dispose() => _dir.Delete(true);


    /// <summary>The host over two acquisitions of the same ground (the later with other pixels), for search and changes.</summary>
    private async Task<(Microsoft.AspNetCore.Builder.WebApplication App, string BaseUrl, long Before, long After)> StartHostWithSceneAsync()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        long before, after;
        using (var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu"))
        {
            var ingestor = new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder);
            before = (await ingestor.IngestAsync(TestScenes.SmallScene(_dir.FullName, "map.tif", 300))).SceneId!.Value;
            after = (await ingestor.IngestAsync(TestScenes.SmallScene(_dir.FullName, "map-later.tif", 300, contentOffset: 360))).SceneId!.Value;
        }
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        return (app, baseUrl, before, after);
    }

    [Fact]
    public async Task MapPageAndItsAssetsAreServedFromTheBinary()
    {
        var (app, baseUrl, _, _) = await StartHostWithSceneAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var page = await http.GetAsync("/");
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            var html = await page.Content.ReadAsStringAsync();
            Assert.Contains("href=\"hangfire\"", html);
            Assert.DoesNotContain("http", html); // no CDN: every asset comes from this host
            foreach (var (path, type) in new[] { ("/static/map.js", "text/javascript"), ("/static/map.css", "text/css"),
                                                 ("/static/vendor/leaflet/leaflet.js", "text/javascript"), ("/static/vendor/leaflet/leaflet.css", "text/css"),
                                                 ("/static/vendor/naturalearth/ne-110m.json", "application/json") }) // the offline basemap
            {
                var response = await http.GetAsync(path);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal(type, response.Content.Headers.ContentType?.MediaType);
                Assert.True((await response.Content.ReadAsByteArrayAsync()).Length > 100, path);
            }
            Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/static/nothing.js")).StatusCode);
        }
        finally { await app.StopAsync(); }
    }

    [Fact]
    public async Task MapPageInHeadlessChromiumListsResultsDrawsFootprintsZoomsAndShowsApiErrors()
    {
        var root = RepositoryPaths.FindRoot();
        var driver = Path.Combine(root, "tests", "web", "map-page.mjs");
        await BrowserTools.AssertInstalledAsync(root);

        var (app, baseUrl, before, after) = await StartHostWithSceneAsync();
        var screenshot = Path.Combine(AppContext.BaseDirectory, "map-page.png"); // left for inspection after a run
        File.Delete(screenshot);
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node", [driver, baseUrl, screenshot, "a farm", before.ToString(), after.ToString()], root, TimeSpan.FromSeconds(180));
            Assert.True(code == 0, $"tests/web/map-page.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        // The driver's facts: as many results and footprint paths as the API returned features; zoom in on selection.
        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement;
        var features = f.GetProperty("features").GetInt32();
        Assert.True(features >= 1);
        Assert.Equal(features, f.GetProperty("results").GetInt32());
        Assert.Equal(features, f.GetProperty("paths").GetInt32());
        Assert.True(f.GetProperty("zoomSelected").GetDouble() > f.GetProperty("zoomFitted").GetDouble());
        Assert.Contains("longitude 200 is outside -180..180", f.GetProperty("bboxError").GetString());
        Assert.True(f.GetProperty("pairs").GetInt32() >= 1);
        Assert.Equal(f.GetProperty("pairs").GetInt32(), f.GetProperty("changePaths").GetInt32());
        Assert.True(f.GetProperty("heatTiles").GetInt32() >= 1);
        Assert.Equal(f.GetProperty("heatTiles").GetInt32(), f.GetProperty("heatPaths").GetInt32());
        Assert.True(f.GetProperty("classTiles").GetInt32() >= 1);
        Assert.Equal(f.GetProperty("classTiles").GetInt32(), f.GetProperty("classPaths").GetInt32());
        Assert.Equal(f.GetProperty("labelsTaken").GetInt32(), f.GetProperty("legendEntries").GetInt32());

        // The screenshot shows the footprint colour inside the map, and nowhere else on the page.
        var map = f.GetProperty("map");
        var (mx, my, mw, mh) = (map.GetProperty("x").GetInt32(), map.GetProperty("y").GetInt32(), map.GetProperty("width").GetInt32(), map.GetProperty("height").GetInt32());
        using var png = RasterDataset.Open(screenshot);
        Assert.True(png.Bands.Count >= 3, $"screenshot has {png.Bands.Count} bands");
        Assert.True(mw > 200 && mh > 200 && mx + mw <= png.Width && my + mh <= png.Height, $"map at {mx},{my} {mw}x{mh} in a {png.Width}x{png.Height} screenshot");
        var rgb = Enumerable.Range(1, 3).Select(b =>
        {
            var buf = new byte[png.Width * png.Height];
            png.Read(b, new PixelWindow(0, 0, png.Width, png.Height), buf.AsSpan(), png.Width, png.Height);
            return buf;
        }).ToArray();
        int inside = 0, outside = 0;
        for (var y = 0; y < png.Height; y++)
            for (var x = 0; x < png.Width; x++)
            {
                var i = y * png.Width + x;
                if (Math.Abs(rgb[0][i] - FootprintColour.R) > 8 || Math.Abs(rgb[1][i] - FootprintColour.G) > 8 || Math.Abs(rgb[2][i] - FootprintColour.B) > 8) continue;
                if (x >= mx && x < mx + mw && y >= my && y < my + mh) inside++; else outside++;
            }
        Assert.True(inside >= 500, $"{inside} footprint-coloured pixels in the map area of {screenshot}; expected the selected footprint's outline");
        Assert.Equal(0, outside);

        // Imagery under the footprints: inside the selected footprint (its outline left out) the screenshot shows the
        // scene's texture — many colours, none dominant — where a page without imagery shows one flat tint.
        Assert.True(f.GetProperty("imageryTiles").GetInt32() >= 1);
        Assert.Equal(features, f.GetProperty("thumbOverlays").GetInt32());
        var box = f.GetProperty("footBox");
        var (bx, by, bw, bh) = (box.GetProperty("x").GetInt32(), box.GetProperty("y").GetInt32(), box.GetProperty("width").GetInt32(), box.GetProperty("height").GetInt32());
        Assert.True(bw > 60 && bh > 60, $"selected footprint at {bx},{by} {bw}x{bh}");
        var colours = new Dictionary<int, int>();
        var pixels = 0;
        for (var y = by + bh / 5; y < by + bh * 4 / 5; y++)
            for (var x = bx + bw / 5; x < bx + bw * 4 / 5; x++)
            {
                var i = y * png.Width + x;
                var key = (rgb[0][i] << 16) | (rgb[1][i] << 8) | rgb[2][i];
                colours[key] = colours.GetValueOrDefault(key) + 1;
                pixels++;
            }
        var dominant = colours.Values.Max();
        Assert.True(colours.Count >= 100 && dominant < pixels / 5,
            $"inside the selected footprint of {screenshot}: {colours.Count} colours, the commonest on {dominant} of {pixels} pixels; expected imagery");
    }
}

/// <summary>
/// The scenes panel of the map page (tests/web/scenes-panel.mjs) over scenes ingested through SceneIngestor: one in
/// the model's range, one far outside it whose file name is an HTML tag with a script, and one that failed. Rows
/// with their fields, clicking zooms onto the scene with its own imagery, nothing from a path becomes markup, search
/// hits of the out-of-range scene are marked; at desktop and phone sizes (screenshots left beside the test binary).
/// </summary>
public sealed class ScenesPanelTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-scenes-panel-");
    public void Dispose() => _dir.Delete(true);

    public const string MarkupName = "<img src=x onerror=window.__xss=1>.tif";

    [Fact]
    public async Task ScenesPanelListsScenesZoomsOntoThemAtDesktopAndPhoneSizesAndShowsPathsAsText()
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var archive = Directory.CreateDirectory(Path.Combine(_dir.FullName, "archive")).FullName;
        Directory.CreateDirectory(Path.Combine(archive, "2018"));
        var model = SceneApiScenes.ModelWithTrainingRange(Path.Combine(_dir.FullName, "model"));
        var good = TestScenes.SmallScene(Path.Combine(archive, "2018"), "m_4709963_se_14_060_20180815.tif", 300);
        await SceneApiScenes.IngestAsync(db, model, good);
        var marked = await SceneApiScenes.IngestAsync(db, model, TestScenes.SmallScene(archive, MarkupName, 0), gsd: 20);
        Assert.True(marked.OutOfRange);
        var broken = Path.Combine(archive, "broken.tif");
        await File.WriteAllBytesAsync(broken, (await File.ReadAllBytesAsync(good))[..400]);
        await Assert.ThrowsAnyAsync<Exception>(() => SceneApiScenes.IngestAsync(db, model, broken));

        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, scenePaths: new ScenePathDisplay(archive),
            tileCache: new Queries.TileDiskCache(Path.Combine(_dir.FullName, "tile-cache"), 16 << 20));
        await app.StartAsync();
        var prefix = Path.Combine(AppContext.BaseDirectory, "scenes-panel");   // screenshots left for inspection after a run
        foreach (var old in Directory.EnumerateFiles(AppContext.BaseDirectory, "scenes-panel-*.png")) File.Delete(old);
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node", [Path.Combine(root, "tests", "web", "scenes-panel.mjs"), baseUrl, prefix, "a farm"],
                root, TimeSpan.FromSeconds(240));
            Assert.True(code == 0, $"tests/web/scenes-panel.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement;
        Assert.Equal(3, f.GetProperty("scenes").GetInt32());
        Assert.Equal(3, f.GetProperty("rows").GetInt32());
        Assert.True(f.GetProperty("first").GetProperty("zoom").GetDouble() > f.GetProperty("world").GetDouble() + 5);
        Assert.True(f.GetProperty("outOfRangeHits").GetInt32() >= 1);
        Assert.True(f.GetProperty("phone").GetProperty("scrollWidth").GetInt32() <= 390);
        foreach (var shot in new[] { "desktop", "desktop-search", "phone-top", "phone" })
        {
            using var png = RasterDataset.Open($"{prefix}-{shot}.png");
            Assert.Equal(shot.StartsWith("desktop") ? 1280 : 390, png.Width);
        }
    }
}
