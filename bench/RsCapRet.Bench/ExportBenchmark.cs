using System.Diagnostics;
using NetTopologySuite.Geometries;
using Npgsql;
using RsCapRet.Export;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// `rscapret export` speed on a synthetic catalogue (default 1,000,000 tiles in scenes of 10,000, each with a caption
/// and a 256-d vector; the HNSW index is dropped, export does not use it): per round, each --formats format written
/// in full to a temporary file. Headline rows/s; file size and peak RSS beside it (rows stream from one cursor, so
/// memory should not grow with the catalogue).
/// </summary>
public static class ExportBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var tiles = a.Int("--tiles", 1_000_000);
        var formats = a.String("--formats", "geoparquet").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(TileExport.ParseFormat).ToList();
        var keep = a.Has("--keep");
        var (warmup, rounds) = a.RoundCounts();
        var admin = RsCapRetDatabase.ResolveConnectionString();
        var dbName = $"rscapret_bench_export_{tiles}";
        var cs = await BenchDatabase.EnsureAsync(admin, dbName);
        try
        {
            await using var ds = await RsCapRetDatabase.OpenAsync(cs);
            var store = new CatalogStore(ds);
            var modelId = await store.RegisterModelAsync(new ModelIdentity("bench", "1", "synthetic", "synthetic", "synthetic"));
            await using (var count = ds.CreateCommand("SELECT count(*) FROM tiles"))
                if ((long)(await count.ExecuteScalarAsync())! < tiles)
                    await LoadAsync(ds, store, modelId, tiles);

            var report = new BenchReport("export", await BenchEnvironment.CollectAsync(torch: false, cs));
            report.Options["tiles"] = tiles;
            report.Options["formats"] = string.Join(',', formats);
            var dir = Directory.CreateTempSubdirectory("rscapret-bench-export-").FullName;
            try
            {
                var canResetPeak = PeakRss.TryReset();
                var sides = formats.Select(f => new Side(f.ToString().ToLowerInvariant(), "rows/s", async () =>
                {
                    var path = Path.Combine(dir, "export" + (f == ExportFormat.GeoParquet ? ".parquet" : f == ExportFormat.FlatGeobuf ? ".fgb" : ".geojson"));
                    if (canResetPeak) PeakRss.TryReset();
                    var start = Stopwatch.GetTimestamp();
                    var rows = await TileExport.WriteAsync(new CatalogStore(ds), new ExportFilter(null, null, null), f, path);
                    var seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                    if (rows != tiles) throw new InvalidOperationException($"exported {rows} rows, expected {tiles}");
                    var extras = new List<Metric> { new("file", "MB", new FileInfo(path).Length / 1e6), new("seconds", "s", seconds) };
                    if (canResetPeak) extras.Add(new Metric("peak RSS", "MB", PeakRss.Peak() / 1e6));
                    File.Delete(path);
                    return new Sample(rows / seconds, extras);
                })).ToList();
                var results = await Rounds.RunAsync(sides, warmup, rounds);
                report.Notes.Add("peak RSS: of the benchmark process while writing (the database server's memory is not counted)");
                report.Print(results, [], warmup, rounds);
            }
            finally { Directory.Delete(dir, true); }
        }
        finally
        {
            if (!keep) await BenchDatabase.DropAsync(admin, dbName);
        }
        return 0;
    }

    private static async Task LoadAsync(NpgsqlDataSource ds, CatalogStore store, int modelId, int tiles)
    {
        Console.WriteLine($"loading {tiles:N0} synthetic tiles ...");
        var sw = Stopwatch.StartNew();
        await using (var drop = ds.CreateCommand("DROP INDEX IF EXISTS tiles_embedding_hnsw")) await drop.ExecuteNonQueryAsync();
        var rng = new Random(7);
        var utm = new GeometryFactory(new PrecisionModel(), 32614);
        const int perScene = 10_000, side = 100;
        const double step = 224 * 0.3 / 111_000.0;
        string[] captions = ["many buildings and green trees are in a dense residential area .", "a river with trees on both sides .",
                             "several storage tanks are near a road .", "a baseball field is surrounded by green trees ."];
        for (var s = 0; s * perScene < tiles; s++)
        {
            var n = Math.Min(perScene, tiles - s * perScene);
            double lon0 = -99 + rng.NextDouble() * 4, lat0 = 40 + rng.NextDouble() * 6;
            var claim = (await store.TryClaimSceneAsync(new SceneFile($"/archive/export_{s}.tif", $"bench-export-{s}", 1), modelId, TimeSpan.FromHours(1)))!;
            var list = new List<TileRecord>(n);
            for (var i = 0; i < n; i++)
            {
                int r = i / side, c = i % side;
                double x = lon0 + c * step, y = lat0 + r * step;
                var v = new float[256];
                for (var d = 0; d < 256; d++) v[d] = (float)(rng.NextDouble() * 2 - 1);
                list.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, BenchGeometry.Box(x, y, x + step, y + step),
                    BenchGeometry.Box(c * 67.2, r * 67.2, (c + 1) * 67.2, (r + 1) * 67.2, utm), 0, captions[rng.Next(captions.Length)], v));
            }
            await store.CompleteSceneAsync(claim, new SceneMetadata(side * 224, side * 224, 3, null, 32614, null,
                new DateTimeOffset(2018 + s % 5, 6, 1, 0, 0, 0, TimeSpan.Zero)), list, modelId, 0);
        }
        await using (var an = ds.CreateCommand("ANALYZE tiles; ANALYZE scenes")) await an.ExecuteNonQueryAsync();
        Console.WriteLine($"  copied in {sw.Elapsed.TotalSeconds:F0} s");
    }
}
