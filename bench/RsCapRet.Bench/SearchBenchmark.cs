using System.Diagnostics;
using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// Synthetic catalogue of realistic shape (256-d vectors, 224-px tiles spread over three UTM zones) in a fresh
/// database; per round, p50/p95 latency of the same vector queries with and without a bbox filter for each
/// ef_search, beside a plain index scan of tiles (what the function adds to the bare HNSW query), and whether
/// filtered queries return k rows; recall@k of the HNSW path against exact search, once.
/// </summary>
public static class SearchBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        int tiles = a.Int("--tiles", 100_000), queries = a.Int("--queries", 200), k = a.Int("--k", 10);
        var keep = a.Has("--keep");
        var (warmup, rounds) = a.RoundCounts();
        var admin = RsCapRetDatabase.ResolveConnectionString();
        var dbName = $"rscapret_bench_{tiles}";
        var cs = await BenchDatabase.EnsureAsync(admin, dbName);
        await using var ds = await RsCapRetDatabase.OpenAsync(cs);
        var store = new CatalogStore(ds);
        var modelId = await store.RegisterModelAsync(new ModelIdentity("bench", "1", "synthetic", "synthetic", "synthetic"));
        await using (var count = ds.CreateCommand("SELECT count(*) FROM tiles"))
            if ((long)(await count.ExecuteScalarAsync())! < tiles)
                await LoadAsync(ds, cs, store, modelId, tiles);

        var report = new BenchReport("search", await BenchEnvironment.CollectAsync(torch: false, cs));
        report.Options["tiles"] = tiles;
        report.Options["queries"] = queries;
        report.Options["k"] = k;
        var workload = await WorkloadAsync(ds, tiles, queries);

        // Each --ef value (rscapret.ef_search for the session; "default" = the function's own choice) is measured on
        // the same catalogue and the same queries; every ef's two query kinds take turns within each round.
        var efs = a.String("--ef", "default").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        report.Options["ef"] = string.Join(',', efs);
        Console.WriteLine($"tiles={tiles:N0} queries={queries} k={k} ef={string.Join(',', efs)}");
        var sources = new List<NpgsqlDataSource>();
        var sides = new List<Side>();
        var ratios = new List<RatioSpec>();
        try
        {
            foreach (var ef in efs)
            {
                int? efValue = ef == "default" ? null : int.Parse(ef, System.Globalization.CultureInfo.InvariantCulture);
                // hnsw.ef_search for the plain index scan: the value the function itself sets (migration 0006); the
                // function restores the session's value afterwards, so this does not change the function's sides.
                var functionEf = Math.Max(k, Math.Min(1000, efValue ?? Math.Max(40, 2 * k)));
                var efCs = new NpgsqlConnectionStringBuilder(cs)
                {
                    Options = (efValue is { } v ? $"-c rscapret.ef_search={v} " : "") + $"-c hnsw.ef_search={functionEf}",
                }.ConnectionString;
                var efDs = await RsCapRetDatabase.OpenAsync(efCs);
                sources.Add(efDs);
                var efStore = new CatalogStore(efDs);
                string plain = $"ef {ef}: vector only", boxed = $"ef {ef}: vector+bbox", scan = $"ef {ef}: plain index scan";
                sides.Add(new Side(plain, "ms p50", () => LatencyAsync(efStore, workload, k, withBox: false)));
                sides.Add(new Side(boxed, "ms p50", () => LatencyAsync(efStore, workload, k, withBox: true)));
                sides.Add(new Side(scan, "ms p50", () => PlainScanLatencyAsync(efDs, workload, k)));
                ratios.Add(new RatioSpec(boxed, plain));
                ratios.Add(new RatioSpec(plain, scan));
                if (ef != efs[0]) ratios.Add(new RatioSpec(plain, $"ef {efs[0]}: vector only"));
            }
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            // Recall is a property of the index and the queries, not of the machine: measured once per ef.
            for (var i = 0; i < efs.Length; i++)
                report.Facts.Add(($"ef {efs[i]}: recall@{k} (HNSW vs exact, {Math.Min(queries, 50)} queries)", await RecallAsync(new CatalogStore(sources[i]), workload, k)));
            report.Print(results, ratios, warmup, rounds);
        }
        finally
        {
            foreach (var s in sources) await s.DisposeAsync();
        }
        if (!keep)
        {
            await ds.DisposeAsync();
            await BenchDatabase.DropAsync(admin, dbName);
        }
        return 0;
    }

    /// <summary>The same queries every round: vectors near the data's clusters, and a bbox of about 600 m around a real tile.</summary>
    private sealed record Workload(float[][] Vectors, Polygon[] Boxes);

    private static async Task<Workload> WorkloadAsync(NpgsqlDataSource ds, int tiles, int queries)
    {
        var rng = new Random(12345);
        // Clustered data: queries near real tiles, as text queries land near the images they describe.
        var centres = Centres();
        var places = new List<(double X, double Y)>();
        await using (var sample = ds.CreateCommand($"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(footprint) c FROM tiles WHERE id % {Math.Max(1, tiles / queries)} = 0 ORDER BY id LIMIT {queries}) s"))
        await using (var r = await sample.ExecuteReaderAsync())
            while (await r.ReadAsync()) places.Add((r.GetDouble(0), r.GetDouble(1)));
        var vectors = new float[queries][];
        var boxes = new Polygon[queries];
        for (var q = 0; q < queries; q++)
        {
            vectors[q] = Noisy(centres[rng.Next(centres.Length)], rng, 0.6f);
            // ~50-100 of the catalogue's tiles: a selective filter.
            var (lon, lat) = places[q % places.Count];
            boxes[q] = BenchGeometry.Box(lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003);
        }
        return new Workload(vectors, boxes);
    }

    private static async Task<Sample> LatencyAsync(CatalogStore store, Workload w, int k, bool withBox)
    {
        var ms = new List<double>(w.Vectors.Length);
        var full = 0;
        for (var q = 0; q < w.Vectors.Length; q++)
        {
            var sw = Stopwatch.StartNew();
            var hits = await store.SearchAsync(w.Vectors[q], k, withBox ? new SearchFilter(Area: w.Boxes[q]) : null);
            ms.Add(sw.Elapsed.TotalMilliseconds);
            if (hits.Count == k) full++;
        }
        return new Sample(Rounds.Percentile(ms, 50), [new("p95", "ms", Rounds.Percentile(ms, 95)), new("queries returning k rows", "queries", full)]);
    }

    /// <summary>
    /// The bare HNSW query on tiles (no function, no join, no filter, no refinement by the full-precision distance):
    /// the floor under the "vector only" side. Sent as the store sends its queries (unprepared), returning the tile
    /// columns the function returns.
    /// </summary>
    private static async Task<Sample> PlainScanLatencyAsync(NpgsqlDataSource ds, Workload w, int k)
    {
        var ms = new List<double>(w.Vectors.Length);
        var full = 0;
        for (var q = 0; q < w.Vectors.Length; q++)
        {
            var sw = Stopwatch.StartNew();
            await using var cmd = ds.CreateCommand("""
                SELECT id, scene_id, grid_row, grid_col, px_x, px_y, px_width, px_height, footprint, caption,
                       embedding <=> $1 AS distance
                  FROM tiles ORDER BY embedding::halfvec(256) <=> $1::halfvec(256) LIMIT $2
                """);
            cmd.Parameters.Add(new() { Value = new Vector(w.Vectors[q]) });
            cmd.Parameters.Add(new() { Value = k });
            var rows = 0;
            await using (var r = await cmd.ExecuteReaderAsync())
                while (await r.ReadAsync())
                {
                    if (!r.IsDBNull(8)) r.GetFieldValue<Polygon>(8); // read the footprint as the store does
                    rows++;
                }
            ms.Add(sw.Elapsed.TotalMilliseconds);
            if (rows == k) full++;
        }
        return new Sample(Rounds.Percentile(ms, 50), [new("p95", "ms", Rounds.Percentile(ms, 95)), new("queries returning k rows", "queries", full)]);
    }

    private static async Task<double> RecallAsync(CatalogStore store, Workload w, int k)
    {
        var n = Math.Min(w.Vectors.Length, 50);
        var recall = 0.0;
        for (var q = 0; q < n; q++)
        {
            var approx = await store.SearchAsync(w.Vectors[q], k);
            var exact = await store.SearchAsync(w.Vectors[q], k, new SearchFilter(Exact: true));
            recall += approx.Select(h => h.TileId).Intersect(exact.Select(h => h.TileId)).Count() / (double)k;
        }
        return recall / n;
    }

    private static async Task LoadAsync(NpgsqlDataSource ds, string connectionString, CatalogStore store, int modelId, int tiles)
    {
        Console.WriteLine($"loading {tiles:N0} synthetic tiles ...");
        var sw = Stopwatch.StartNew();
        // Bulk load without the index, then build each model's graph as migration 0016 defines it.
        await using (var drop = ds.CreateCommand("DROP INDEX IF EXISTS tiles_embedding_hnsw")) await drop.ExecuteNonQueryAsync();
        var rng = new Random(42);
        var centres = Centres();
        const int perScene = 10_000;
        for (var s = 0; s * perScene < tiles; s++)
        {
            var n = Math.Min(perScene, tiles - s * perScene);
            var zone = s % 3; // UTM 14N, 15N, 16N
            double lon0 = -99 + zone * 6 + rng.NextDouble() * 4, lat0 = 40 + rng.NextDouble() * 6;
            var claim = (await store.TryClaimSceneAsync(new SceneFile($"/archive/scene_{s}.tif", $"bench-{s}", 1), modelId, TimeSpan.FromHours(1)))!;
            var side = (int)Math.Ceiling(Math.Sqrt(n));
            var utm = new GeometryFactory(new PrecisionModel(), 32614 + zone);
            var list = new List<TileRecord>(n);
            for (var i = 0; i < n; i++)
            {
                int r = i / side, c = i % side;
                double step = 224 * 0.3 / 111_000.0; // 224 px at 0.3 m, in degrees (roughly)
                double x = lon0 + c * step, y = lat0 + r * step;
                list.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, BenchGeometry.Box(x, y, x + step, y + step),
                    BenchGeometry.Box(c * 67.2, r * 67.2, (c + 1) * 67.2, (r + 1) * 67.2, utm), 0, null,
                    Noisy(centres[rng.Next(centres.Length)], rng, 0.8f)));
            }
            await store.CompleteSceneAsync(claim, new SceneMetadata(side * 224, side * 224, 3, null, 32614 + zone, null,
                new DateTimeOffset(2018 + s % 5, 6, 1, 0, 0, 0, TimeSpan.Zero)), list, modelId, 0);
        }
        Console.WriteLine($"  copied in {sw.Elapsed.TotalSeconds:F0} s; building HNSW index ...");
        sw.Restart();
        await using (var conn = await ds.OpenConnectionAsync())
        {
            await using (var idx = new NpgsqlCommand("SET maintenance_work_mem = '2GB'; SELECT rscapret_create_tile_vector_index()", conn))
                await idx.ExecuteNonQueryAsync();
            await TileVectorIndex.BuildMissingAsync(connectionString, conn, line => Console.WriteLine("  " + line));
        }
        await using (var an = ds.CreateCommand("ANALYZE tiles; ANALYZE scenes")) await an.ExecuteNonQueryAsync();
        Console.WriteLine($"  index built in {sw.Elapsed.TotalSeconds:F0} s");
    }

    private static float[][] Centres()
    {
        var rng = new Random(1);
        return Enumerable.Range(0, 500).Select(_ => Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();
    }

    private static float[] Noisy(float[] centre, Random rng, float noise) =>
        centre.Select(v => v + noise * (float)(rng.NextDouble() * 2 - 1)).ToArray();

}
