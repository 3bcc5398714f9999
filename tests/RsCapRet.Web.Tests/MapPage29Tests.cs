using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Core;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>
/// Issue 29's map page items (tests/web/map29.mjs in headless Chromium): the offline Natural Earth basemap (land and
/// sea in the world-zoom screenshot, no request off the host), "more" (rows equal to a larger k's), the after/before/
/// near filters (sent, kept in the address, read back), the heat map from the address zooming onto its bbox, and a
/// phone's map size. Screenshots are left beside the test binary (map29-*.png).
/// </summary>
public sealed class MapPage29Tests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-map29-");
    public void Dispose() => _dir.Delete(true);

    /// <summary>The sea and land colours of web/map.css and web/map.js.</summary>
    private static readonly (int R, int G, int B) Sea = (0xb7, 0xd0, 0xe2), Land = (0xf2, 0xef, 0xe6);

    [Fact]
    public async Task BasemapMoreFiltersAndHeatZoomWorkInHeadlessChromium()
    {
        var root = RepositoryPaths.FindRoot();
        await BrowserTools.AssertInstalledAsync(root);
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        using (var encoder = Inference.RsCapRetTileEncoder.Load(model, "cpu"))
        {
            var ingestor = new Pipeline.SceneIngestor(new CatalogStore(db.DataSource), encoder);
            await ingestor.IngestAsync(TestScenes.SmallScene(_dir.FullName, "a.tif", 300));
            await ingestor.IngestAsync(TestScenes.SmallScene(_dir.FullName, "b.tif", 300, contentOffset: 360));
        }
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard);
        await app.StartAsync();
        var prefix = Environment.GetEnvironmentVariable("RSCAPRET_MAP29_SCREENSHOTS") is { Length: > 0 } p ? p : Path.Combine(AppContext.BaseDirectory, "map29");
        string stdout;
        try
        {
            var (code, output, errors) = await TestProcess.RunAsync("node", [Path.Combine(root, "tests", "web", "map29.mjs"), baseUrl, prefix, "a farm"],
                root, TimeSpan.FromSeconds(240));
            Assert.True(code == 0, $"tests/web/map29.mjs failed (exit {code}):\n{errors}\n{output}");
            stdout = output;
        }
        finally { await app.StopAsync(); }

        using var facts = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]);
        var f = facts.RootElement;
        Assert.Equal(2, f.GetProperty("basemapFeatures").GetInt32());
        Assert.Contains("after must be earlier than before", f.GetProperty("filterError").GetString());
        Assert.True(f.GetProperty("heatZoom").GetDouble() >= 10);
        Assert.True(f.GetProperty("phoneMap").GetProperty("height").GetInt32() >= 422);

        // World zoom, no imagery there: land is the basemap's land colour, the oceans the sea colour.
        using var png = RasterDataset.Open(prefix + "-world-1280.png");
        (int R, int G, int B) Pixel(JsonElement point)
        {
            var (x, y) = (point.GetProperty("x").GetInt32(), point.GetProperty("y").GetInt32());
            var rgb = new int[3];
            for (var b = 1; b <= 3; b++)
            {
                var buf = new byte[1];
                png.Read(b, new PixelWindow(x, y, 1, 1), buf.AsSpan(), 1, 1);
                rgb[b - 1] = buf[0];
            }
            return (rgb[0], rgb[1], rgb[2]);
        }
        static bool Near((int R, int G, int B) a, (int R, int G, int B) b) => Math.Abs(a.R - b.R) <= 6 && Math.Abs(a.G - b.G) <= 6 && Math.Abs(a.B - b.B) <= 6;
        foreach (var point in f.GetProperty("land").EnumerateArray()) Assert.True(Near(Pixel(point), Land), $"land at {point}: {Pixel(point)}");
        foreach (var point in f.GetProperty("sea").EnumerateArray()) Assert.True(Near(Pixel(point), Sea), $"sea at {point}: {Pixel(point)}");
    }
}
