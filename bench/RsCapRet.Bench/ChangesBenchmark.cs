using System.Diagnostics;
using NetTopologySuite.Geometries;
using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// Change queries between two synthetic scenes of the same ground: a --side x --side tile grid each (default 200 x 200
/// = 40,000 tiles: a 20k x 20k px scene in 100 px tiles, or 44.8k px in 224 px tiles), the after grid a tenth of a
/// tile off the before grid (another acquisition is never pixel-aligned) with 2 % of its tiles changed. Per round:
/// the whole-scene query, the same within a bbox of about 1 % of the scene, and the whole scene ranked toward a
/// query vector; --queries repetitions each, median ms.
/// </summary>
public static class ChangesBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        int side = a.Int("--side", 200), k = a.Int("--k", 20), queries = a.Int("--queries", 3);
        var keep = a.Has("--keep");
        var (warmup, rounds) = a.RoundCounts();
        var admin = RsCapRetDatabase.ResolveConnectionString();
        var dbName = $"rscapret_bench_changes_{side}";
        var cs = await BenchDatabase.EnsureAsync(admin, dbName);
        var ds = await RsCapRetDatabase.OpenAsync(cs);
        try
        {
            var store = new CatalogStore(ds);
            var modelId = await store.RegisterModelAsync(new ModelIdentity("bench", "1", "synthetic", "synthetic", "synthetic"));
            var (before, after, target) = await LoadAsync(ds, store, modelId, side);

            var report = new BenchReport("changes", await BenchEnvironment.CollectAsync(torch: false, cs));
            report.Options["tiles_per_scene"] = side * side;
            report.Options["k"] = k;
            report.Options["queries_per_round"] = queries;
            Console.WriteLine($"two scenes of {side * side:N0} tiles, k={k}, {queries} queries per side and round");
            var box = BenchGeometry.Box(0.45, 0.45, 0.55, 0.55);   // 10 % x 10 % of the scene
            var full = new ChangeRequest(before, after, null, null, null, k);
            var sides = new List<Side>
            {
                new("whole scene", "ms p50", () => TimeAsync(store, full, queries)),
                new("bbox 1 %", "ms p50", () => TimeAsync(store, full with { Area = box }, queries)),
                new("whole scene, toward", "ms p50", () => TimeAsync(store, full with { Toward = target }, queries)),
            };
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            // What the answer holds, once: the changed tiles should fill the top k.
            var check = await store.ChangesAsync(full with { K = k });
            report.Facts.Add(($"pairs in the top {k} that are planted changes", check.Changes.Count(c => c.Distance > 0.5)));
            report.Facts.Add(("IoU of the top pair", Math.Round(check.Changes is [var top, ..] ? top.Iou : 0, 3)));
            report.Print(results, [new RatioSpec("bbox 1 %", "whole scene"), new RatioSpec("whole scene, toward", "whole scene")], warmup, rounds);
        }
        finally
        {
            await ds.DisposeAsync();
            if (!keep) await BenchDatabase.DropAsync(admin, dbName);
        }
        return 0;
    }

    private static async Task<Sample> TimeAsync(CatalogStore store, ChangeRequest request, int queries)
    {
        var ms = new List<double>();
        var rows = 0;
        for (var q = 0; q < queries; q++)
        {
            var sw = Stopwatch.StartNew();
            rows = (await store.ChangesAsync(request)).Changes.Count;
            ms.Add(sw.Elapsed.TotalMilliseconds);
        }
        return new Sample(Summary.Of(ms).Median, [new("rows", "rows", rows)]);
    }

    /// <summary>The two scenes (loaded once and kept while the database lives) and the direction the changes moved toward.</summary>
    private static async Task<(long Before, long After, float[] Target)> LoadAsync(NpgsqlDataSource ds, CatalogStore store, int modelId, int side)
    {
        var rng = new Random(42);
        var target = Random(rng);
        var existing = new List<long>();
        await using (var find = ds.CreateCommand("SELECT id FROM scenes WHERE status = 'done' ORDER BY id"))
        await using (var r = await find.ExecuteReaderAsync())
            while (await r.ReadAsync()) existing.Add(r.GetInt64(0));
        if (existing.Count == 2) return (existing[0], existing[1], target);   // --keep from an earlier run

        Console.WriteLine($"loading 2 x {side * side:N0} synthetic tiles ...");
        var sw = Stopwatch.StartNew();
        // The change query needs the GiST index on footprints, not the HNSW one: leave HNSW out of the bulk load.
        await using (var drop = ds.CreateCommand("DROP INDEX IF EXISTS tiles_embedding_hnsw")) await drop.ExecuteNonQueryAsync();
        var vectors = Enumerable.Range(0, side * side).Select(_ => Random(rng)).ToArray();
        var ids = new long[2];
        for (var s = 0; s < 2; s++)
        {
            var offset = s == 0 ? 0 : 0.1 / side;
            var claim = (await store.TryClaimSceneAsync(new SceneFile($"/archive/changes_{s}.tif", $"bench-changes-{s}", 1), modelId, TimeSpan.FromHours(1)))!;
            var tiles = new List<TileRecord>(side * side);
            for (var r = 0; r < side; r++)
                for (var c = 0; c < side; c++)
                {
                    var v = vectors[r * side + c];
                    if (s == 1 && rng.NextDouble() < 0.02) v = target.Zip(Random(rng), (t, n) => t + 0.3f * n).ToArray();
                    double x = offset + (double)c / side, y = offset + (double)r / side;
                    tiles.Add(new TileRecord(r, c, c * 100, r * 100, 100, 100, BenchGeometry.Box(x, y, x + 1.0 / side, y + 1.0 / side),
                        BenchGeometry.Box(c, r, c + 1, r + 1), 0, null, v));
                }
            await store.CompleteSceneAsync(claim, new SceneMetadata(side * 100, side * 100, 3, null, 4326, BenchGeometry.Box(offset, offset, offset + 1, offset + 1),
                new DateTimeOffset(2018 + 2 * s, 7, 1, 0, 0, 0, TimeSpan.Zero)), tiles, modelId, 0);
            ids[s] = claim.SceneId;
        }
        await using (var an = ds.CreateCommand("ANALYZE tiles; ANALYZE scenes")) await an.ExecuteNonQueryAsync();
        Console.WriteLine($"  loaded in {sw.Elapsed.TotalSeconds:F0} s");
        return (ids[0], ids[1], target);
    }

    private static float[] Random(Random rng) => Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

}
