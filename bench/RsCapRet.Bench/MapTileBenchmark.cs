using System.Diagnostics;
using RsCapRet.Queries;
using RsCapRet.Raster;

namespace RsCapRet.Bench;

/// <summary>
/// Map tiles of one large scene (default 20,000 x 20,000 px of real aerial texture at 0.3 m, no overviews): per round,
/// the same tiles at a low zoom (the scene is a few tiles: the whole-scene preview serves them) and at a high zoom
/// (near the scene's resolution: a direct read each), rendered from the file, then read back from the disk cache.
/// Reported per side: p50 (headline) and p95 ms per tile. Measured once, apart: opening the scene (its stretch) and
/// the first low-zoom tile, which reads the preview — the cold costs.
/// </summary>
public static class MapTileBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var size = a.Int("--size", 20000);
        var tilesPerRound = a.Int("--tiles", 32);
        var (warmup, rounds) = a.RoundCounts();
        var report = new BenchReport("tiles", await BenchEnvironment.CollectAsync(torch: false));
        report.Options["size"] = size;
        report.Options["tiles per round"] = tilesPerRound;
        var sw = Stopwatch.StartNew();
        var scene = await IngestBenchmark.SyntheticSceneAsync(size, 0.3);
        Console.WriteLine($"scene: {scene} ({size}x{size} px, {new FileInfo(scene).Length / 1e6:F0} MB), made or reused in {sw.Elapsed.TotalSeconds:F0} s");

        sw.Restart();
        using var renderer = SceneMapRenderer.Open(scene);
        var openMs = sw.Elapsed.TotalMilliseconds;
        // The scene's centre, and the zooms: low = the scene spans about two tiles; high = about its own resolution.
        using var tiler = SceneTiler.Open(scene);
        var ring = tiler.Info.FootprintWgs84!.Ring;
        double lon = ring.Average(p => p.X), lat = ring.Average(p => p.Y);
        var extentM = size * 0.3;
        var groundPerTile = (double z) => 40075016.686 * Math.Cos(lat * Math.PI / 180) / Math.Pow(2, z);
        var low = Enumerable.Range(0, 24).First(z => groundPerTile(z) < extentM / 1.5);
        var high = Enumerable.Range(0, 24).First(z => groundPerTile(z) / 256 < 0.4);
        var lowTiles = Covering(renderer, lon, lat, low, tilesPerRound);
        var highTiles = Covering(renderer, lon, lat, high, tilesPerRound);
        sw.Restart();
        renderer.Render(lowTiles[0]);
        var firstLowMs = sw.Elapsed.TotalMilliseconds;
        report.Facts.Add(("open the scene (band choice, stretch), ms", openMs));
        report.Facts.Add(("first low-zoom tile (reads the whole-scene preview), ms", firstLowMs));
        report.Facts.Add(("zooms", $"low {low} ({lowTiles.Count} tiles that touch the scene), high {high} ({highTiles.Count} tiles around the centre)"));

        var cacheDir = Directory.CreateTempSubdirectory("rscapret-bench-tiles-").FullName;
        var cache = new TileDiskCache(cacheDir, 1L << 30);
        try
        {
            Sample Render(IReadOnlyList<MapTileAddress> tiles, bool store) => Timed(tiles, t =>
            {
                var rgba = renderer.Render(t);
                var png = rgba is null ? [] : PngEncoder.EncodeRgba(256, 256, rgba);
                if (store) cache.Put(Key(t), png);
            });
            Sample Cached(IReadOnlyList<MapTileAddress> tiles) => Timed(tiles, t =>
            {
                if (cache.TryGet(Key(t)) is null) throw new InvalidOperationException($"tile {t} was not cached");
            });
            var sides = new List<Side>
            {
                new($"render z{low}", "ms/tile", () => Task.FromResult(Render(lowTiles, store: true))),
                new($"render z{high}", "ms/tile", () => Task.FromResult(Render(highTiles, store: true))),
                new($"cached z{low}", "ms/tile", () => Task.FromResult(Cached(lowTiles))),
                new($"cached z{high}", "ms/tile", () => Task.FromResult(Cached(highTiles))),
            };
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            report.Notes.Add("render: the tile drawn from the scene (transform, read, sample, PNG) with the scene already open; cached: the PNG read back from the disk cache, what a repeated request costs");
            report.Print(results, [new RatioSpec($"render z{high}", $"render z{low}")], warmup, rounds);
        }
        finally { Directory.Delete(cacheDir, true); }
        return 0;
    }

    private static string Key(MapTileAddress t) => $"{t.Z:D2}{t.X:D8}{t.Y:D8}";

    /// <summary>Up to <paramref name="count"/> tiles at zoom z around the lon/lat that the scene may cover, nearest first.</summary>
    private static List<MapTileAddress> Covering(SceneMapRenderer renderer, double lon, double lat, int z, int count)
    {
        var n = 1 << z;
        var (cx, cy) = (MapTileAddress.Containing(lon, lat, z).X, MapTileAddress.Containing(lon, lat, z).Y);
        var tiles = new List<MapTileAddress>();
        for (var r = 0; r < 64 && tiles.Count < count; r++)
            for (var dx = -r; dx <= r && tiles.Count < count; dx++)
                for (var dy = -r; dy <= r && tiles.Count < count; dy++)
                {
                    if (Math.Max(Math.Abs(dx), Math.Abs(dy)) != r) continue;
                    var (x, y) = (cx + dx, cy + dy);
                    if (x < 0 || y < 0 || x >= n || y >= n) continue;
                    var t = MapTileAddress.Checked(z, x, y);
                    if (renderer.MayCover(t)) tiles.Add(t);
                }
        return tiles;
    }

    /// <summary>Each tile timed on its own: p50 is the headline, p95 and the mean beside it.</summary>
    private static Sample Timed(IReadOnlyList<MapTileAddress> tiles, Action<MapTileAddress> work)
    {
        var ms = new List<double>(tiles.Count);
        foreach (var t in tiles)
        {
            var start = Stopwatch.GetTimestamp();
            work(t);
            ms.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
        }
        return new Sample(Rounds.Percentile(ms, 50), [new("p95", "ms", Rounds.Percentile(ms, 95)), new("mean", "ms", ms.Average())]);
    }
}
