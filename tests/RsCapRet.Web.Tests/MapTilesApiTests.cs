using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using RsCapRet.Cli;
using RsCapRet.Cli.Commands;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;

namespace RsCapRet.Web.Tests;

/// <summary>GET /tiles/{z}/{x}/{y}.png over two ingested acquisitions of the same ground: drawn, cached, bounded, honest about missing files.</summary>
public sealed class MapTilesApiTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-maptiles-api-");
    public void Dispose() => _dir.Delete(true);


    /// <summary>The alpha plane of a PNG, decoded by GDAL.</summary>
    private byte[] Alpha(byte[] png)
    {
        var path = Path.Combine(_dir.FullName, Guid.NewGuid().ToString("N") + ".png");
        File.WriteAllBytes(path, png);
        using var ds = RasterDataset.Open(path);
        Assert.Equal((256, 256, 4), (ds.Width, ds.Height, ds.Bands.Count));
        var alpha = new byte[256 * 256];
        ds.Read(4, new PixelWindow(0, 0, 256, 256), alpha.AsSpan(), 256, 256);
        return alpha;
    }


    [Fact]
    public async Task TilesAreDrawnFromTheScenesCachedAndDrawnWithoutAFileThatWentMissing()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var earlier = TestScenes.SmallScene(_dir.FullName, "m_4709963_se_14_060_20180815.tif", 300);
        var later = TestScenes.SmallScene(_dir.FullName, "m_4709963_se_14_060_20200831.tif", 300, contentOffset: 360);
        long earlierId, laterId;
        using (var encoder = RsCapRetTileEncoder.Load(model, "cpu"))
        {
            var ingestor = new SceneIngestor(new CatalogStore(db.DataSource), encoder);
            earlierId = (await ingestor.IngestAsync(earlier)).SceneId!.Value;
            laterId = (await ingestor.IngestAsync(later)).SceneId!.Value;
        }
        double lon, lat;
        using (var tiler = SceneTiler.Open(earlier))
            (lon, lat) = (tiler.Info.FootprintWgs84!.Ring.Average(p => p.X), tiler.Info.FootprintWgs84.Ring.Average(p => p.Y));
        var tile = MapTileAddress.Containing(lon, lat, 15);   // ~3 m/px there: the 320 m scene is ~100 px across
        var url = $"/tiles/{tile.Z}/{tile.X}/{tile.Y}.png";

        var cacheDir = Path.Combine(_dir.FullName, "tile-cache");
        var cache = new TileDiskCache(cacheDir, 64 * 1024);
        var baseUrl = $"http://127.0.0.1:{LoopbackPorts.Free()}";
        var app = RsCapRetWebHost.Build(db.ConnectionString, baseUrl, model, jobs: WebHostJobs.Dashboard, tileCache: cache);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(baseUrl) };
            var first = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, first.StatusCode);
            Assert.Equal("image/png", first.Content.Headers.ContentType?.MediaType);
            Assert.Equal("miss", first.Headers.GetValues("X-RsCapRet-Tile-Cache").Single());
            var png = await first.Content.ReadAsByteArrayAsync();
            var covered = Alpha(png).Count(a => a == 255);
            Assert.InRange(covered, 1_000, 60_000);   // the scene (about 100 x 100 px, maybe split over neighbouring tiles), not the whole tile
            var again = await http.GetAsync(url);
            Assert.Equal("hit", again.Headers.GetValues("X-RsCapRet-Tile-Cache").Single());
            Assert.Equal(png, await again.Content.ReadAsByteArrayAsync());

            // One scene only: the earlier acquisition's pixels, not the later one drawn over it.
            var onlyEarlier = await http.GetByteArrayAsync(url + $"?scene={earlierId}");
            Assert.NotEqual(png, onlyEarlier);   // the composite shows the later scene on top
            Assert.Equal(covered, Alpha(onlyEarlier).Count(a => a == 255));

            // Nothing ingested here: a transparent tile. Out of range or malformed: 400 JSON.
            var empty = await http.GetAsync("/tiles/3/0/0.png");
            Assert.Equal(HttpStatusCode.OK, empty.StatusCode);
            Assert.All(Alpha(await empty.Content.ReadAsByteArrayAsync()), a => Assert.Equal(0, a));
            foreach (var (bad, message) in new[] { ("/tiles/25/0/0.png", "zoom 25 is outside 0..24"), ("/tiles/2/4/0.png", "x 4 is outside 0..3"),
                                                   ("/tiles/2/0/-1.png", "y -1 is outside"), ("/tiles/a/0/0.png", "zoom must be a whole number"),
                                                   ($"{url}?scene=x", "scene must be a positive scene id") })
            {
                var response = await http.GetAsync(bad);
                Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{bad}: {response.StatusCode}");
                var error = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString();
                Assert.Contains(message, error);
            }

            // The later scene's file goes missing: the tile is drawn from the earlier one, and the later is named.
            File.Move(later, later + ".moved");
            var without = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.OK, without.StatusCode);
            Assert.Equal(laterId.ToString(), without.Headers.GetValues("X-RsCapRet-Missing-Scenes").Single());
            Assert.Equal(onlyEarlier, await without.Content.ReadAsByteArrayAsync());
            File.Move(later + ".moved", later);
            Assert.Equal(png, await http.GetByteArrayAsync(url));   // back again: the full tile (from the cache)

            // The cache stays under its cap (64 KB here) however many tiles are drawn.
            for (var dx = -3; dx <= 3; dx++)
                for (var dy = -3; dy <= 3; dy++)
                    Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"/tiles/17/{tile.X * 4 + 2 + dx}/{tile.Y * 4 + 2 + dy}.png")).StatusCode);
            Assert.True(cache.Bytes <= cache.MaxBytes, $"{cache.Bytes} bytes cached, cap {cache.MaxBytes}");
            Assert.Equal(cache.Bytes, new DirectoryInfo(cacheDir).EnumerateFiles("*.png", SearchOption.AllDirectories).Sum(f => f.Length));
        }
        finally { await app.StopAsync(); }
    }
}
