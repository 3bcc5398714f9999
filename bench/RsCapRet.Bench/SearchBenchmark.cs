using System.Diagnostics;
using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Storage;
using TorchSharp;

namespace RsCapRet.Bench;

/// <summary>
/// Synthetic catalogue of realistic shape (256-d vectors, 224-px tiles spread over three UTM zones) in a fresh
/// database, of one of three vector sets (<c>--set</c>): <c>clustered</c> (500 well-separated clusters, the
/// original), <c>overlapping</c> (20,000 small clusters inside 200 overlapping groups: near neighbours that are
/// hard to tell apart) or <c>isotropic</c> (uniform in the cube: no structure at all). Per round, p50/p95 latency
/// of the same vector queries with and without a bbox filter for each ef_search, beside a plain index scan of tiles
/// (what the function adds to the bare HNSW query), and whether filtered queries return k rows; recall@k of the
/// function against the exact neighbours (brute force over every stored vector) on <c>--recall-queries</c> other
/// queries, once per ef; with <c>--cold</c>, one pass right after the local cluster restarted with an empty buffer
/// cache, reported apart. The last line is a summary JSON object (tiles, queries, recall_at_10, p50_ms, …).
/// </summary>
public static class SearchBenchmark
{
    /// <summary>How the synthetic vectors and their queries are drawn.</summary>
    private sealed record VectorSet(string Name, Func<Random, float[]> Tile, Func<Random, float[]> Query);

    private static VectorSet SetNamed(string name)
    {
        switch (name)
        {
            case "clustered":
            {
                var centres = RandomVectors(new Random(1), 500);
                return new(name, rng => Noisy(centres[rng.Next(centres.Length)], rng, 0.8f), rng => Noisy(centres[rng.Next(centres.Length)], rng, 0.6f));
            }
            case "overlapping":
            {
                var groups = RandomVectors(new Random(1), 200);
                var rng0 = new Random(2);
                var centres = Enumerable.Range(0, 20_000).Select(_ => Noisy(groups[rng0.Next(groups.Length)], rng0, 0.45f)).ToArray();
                return new(name, rng => Noisy(centres[rng.Next(centres.Length)], rng, 0.3f), rng => Noisy(centres[rng.Next(centres.Length)], rng, 0.3f));
            }
            case "isotropic":
                return new(name, rng => RandomVectors(rng, 1)[0], rng => RandomVectors(rng, 1)[0]);
            default:
                throw new BenchArgsException($"--set {name}: expected clustered, overlapping or isotropic");
        }
    }

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        int tiles = a.Int("--tiles", 100_000), queries = a.Int("--queries", 200), k = a.Int("--k", 10);
        var recallQueries = a.Int("--recall-queries", 1000);
        var set = SetNamed(a.String("--set", "clustered"));
        var keep = a.Has("--keep");
        var hybrid = a.Has("--hybrid");
        // Issue 29: what the product adds to a text query's search (relevance from the shipped model's calibration).
        var relevance = a.Has("--relevance") ? ShippedCalibration() : null;
        var cold = a.Has("--cold");
        var (warmup, rounds) = a.RoundCounts();
        var admin = RsCapRetDatabase.ResolveConnectionString();
        var dbName = set.Name == "clustered" ? $"rscapret_bench_{tiles}" : $"rscapret_bench_{set.Name}_{tiles}";
        var cs = await BenchDatabase.EnsureAsync(admin, dbName);
        await using var ds = await RsCapRetDatabase.OpenAsync(cs);
        var store = new CatalogStore(ds);
        var modelId = await store.RegisterModelAsync(new ModelIdentity("bench", "1", "synthetic", "synthetic", "synthetic"));
        await using (var count = ds.CreateCommand("SELECT count(*) FROM tiles"))
            if ((long)(await count.ExecuteScalarAsync())! < tiles)
                await LoadAsync(ds, cs, store, modelId, tiles, set);

        if (hybrid) await CaptionTilesAsync(ds);
        var report = new BenchReport("search", await BenchEnvironment.CollectAsync(torch: false, cs));
        report.Options["tiles"] = tiles;
        report.Options["queries"] = queries;
        report.Options["k"] = k;
        report.Options["set"] = set.Name;
        report.Options["recall_queries"] = recallQueries;
        var workload = await WorkloadAsync(ds, tiles, queries, set);
        await SizesAsync(ds, report, tiles);

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
                sides.Add(new Side(plain, "ms p50", () => LatencyAsync(efStore, workload, k, modelId, withBox: false)));
                sides.Add(new Side(boxed, "ms p50", () => LatencyAsync(efStore, workload, k, modelId, withBox: true)));
                sides.Add(new Side(scan, "ms p50", () => PlainScanLatencyAsync(efDs, workload, k)));
                ratios.Add(new RatioSpec(boxed, plain));
                ratios.Add(new RatioSpec(plain, scan));
                if (hybrid)
                {
                    // Issue 31: the hybrid ranking (the vector ranking's first 200 rows re-ranked with the caption match).
                    var fused = $"ef {ef}: hybrid";
                    sides.Add(new Side(fused, "ms p50", () => HybridLatencyAsync(efStore, workload, k, modelId)));
                    ratios.Add(new RatioSpec(fused, plain));
                }
                if (relevance is { } calibration)
                {
                    var scored = $"ef {ef}: vector + relevance";
                    sides.Add(new Side(scored, "ms p50", () => RelevanceLatencyAsync(efStore, workload, k, modelId, calibration)));
                    ratios.Add(new RatioSpec(scored, plain));
                }
                if (ef != efs[0]) ratios.Add(new RatioSpec(plain, $"ef {efs[0]}: vector only"));
            }
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            if (relevance is { } shipped)
            {
                // The relevance step alone (no database): too small to see beside a search's spread, so timed apart.
                var hits = new List<IReadOnlyList<TileHit>>();
                foreach (var v in workload.Vectors) hits.Add(await store.SearchAsync(v, k, new SearchFilter(ModelId: modelId)));
                const int repeats = 50;
                var sw = Stopwatch.StartNew();
                for (var r = 0; r < repeats; r++)
                    for (var q = 0; q < hits.Count; q++) RsCapRet.Queries.RankedHits.Score(hits[q], workload.Vectors[q], shipped);
                report.Facts.Add(($"relevance alone: ms per query of {k} hits (mean of {repeats} x {queries} queries)", sw.Elapsed.TotalMilliseconds / (repeats * hits.Count)));
            }
            // Recall is a property of the index and the queries, not of the machine: measured once per ef, against
            // the exact neighbours of other queries of the same distribution.
            var recallSet = ExactNeighbours(await StoredVectorsAsync(ds), RecallWorkload(set, recallQueries), k);
            var recalls = new List<double>();
            for (var i = 0; i < efs.Length; i++)
            {
                var (recall, perfect, belowHalf) = await RecallAsync(new CatalogStore(sources[i]), recallSet, k, modelId);
                recalls.Add(recall);
                report.Facts.Add(($"ef {efs[i]}: recall@{k} (function vs exact neighbours, {recallQueries} queries)", recall));
                // Whether the misses are spread thinly or are whole neighbourhoods the graph search never reached.
                report.Facts.Add(($"ef {efs[i]}: queries with all {k} exact neighbours found", (double)perfect));
                report.Facts.Add(($"ef {efs[i]}: queries with fewer than half of them found", (double)belowHalf));
            }
            // Last, as it restarts the server (every pooled connection above is broken by it).
            var coldPass = cold ? await ColdPassAsync(cs, workload, k, modelId) : null;
            if (coldPass is { } c)
            {
                report.Facts.Add(("cold pass, function p50 ms", c.Function.Value));
                report.Facts.Add(("cold pass, function p95 ms", c.Function.Extras![0].Value));
                report.Facts.Add(("cold pass, plain index scan p50 ms", c.Plain.Value));
                report.Notes.Add("cold pass: the first run of each query right after the local cluster restarted with an empty buffer cache " +
                                 "(autoprewarm's block list removed); the operating system's file cache stays warm, so this is a restart, not a reboot.");
            }
            else report.Notes.Add("cold pass: not measured (--cold restarts the local cluster first)");
            report.Print(results, ratios, warmup, rounds);
            Summary(results, efs[0], tiles, queries, k, recalls[0], coldPass);
        }
        finally
        {
            foreach (var s in sources) await s.DisposeAsync();
        }
        if (!keep)
        {
            ds.Clear();
            await ds.DisposeAsync();
            await BenchDatabase.DropAsync(admin, dbName);
        }
        return 0;
    }

    /// <summary>The same queries every round: vectors near the data's clusters, and a bbox of about 600 m around a real tile.</summary>
    private sealed record Workload(float[][] Vectors, Polygon[] Boxes);

    private static async Task<Workload> WorkloadAsync(NpgsqlDataSource ds, int tiles, int queries, VectorSet set)
    {
        var rng = new Random(12345);
        // Queries of the set's distribution (for the clustered sets: near the data, as text queries land near the
        // images they describe).
        var places = new List<(double X, double Y)>();
        await using (var sample = ds.CreateCommand($"SELECT ST_X(c), ST_Y(c) FROM (SELECT ST_Centroid(footprint) c FROM tiles WHERE id % {Math.Max(1, tiles / queries)} = 0 ORDER BY id LIMIT {queries}) s"))
        await using (var r = await sample.ExecuteReaderAsync())
            while (await r.ReadAsync()) places.Add((r.GetDouble(0), r.GetDouble(1)));
        var vectors = new float[queries][];
        var boxes = new Polygon[queries];
        for (var q = 0; q < queries; q++)
        {
            vectors[q] = set.Query(rng);
            // ~50-100 of the catalogue's tiles: a selective filter.
            var (lon, lat) = places[q % places.Count];
            boxes[q] = BenchGeometry.Box(lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003);
        }
        return new Workload(vectors, boxes);
    }

    /// <summary>Caption texts of the kind the model writes, for the hybrid side: tiles get one each, queries another.</summary>
    private static readonly string[] Captions =
    [
        "many white storage tanks are next to a road", "a dense residential area with many buildings and green trees",
        "a river flows through green farmland", "an airplane is parked at the airport near the runway",
        "some cars are parked in a parking lot beside a building", "a playground is surrounded by many green trees",
        "several buildings and green trees are around a square", "a bridge crosses the river between two roads",
        "a baseball field is next to some buildings", "many boats are in the harbor near the pier",
    ];

    /// <summary>Gives the synthetic tiles captions (once; a catalogue kept with --keep has them already).</summary>
    private static async Task CaptionTilesAsync(NpgsqlDataSource ds)
    {
        await using var cmd = ds.CreateCommand("UPDATE tiles SET caption = ($1::text[])[1 + (id % cardinality($1::text[]))::int] WHERE caption IS NULL");
        cmd.Parameters.Add(new() { Value = Captions, NpgsqlDbType = NpgsqlDbType.Array | NpgsqlDbType.Text });
        cmd.CommandTimeout = 0;
        var updated = await cmd.ExecuteNonQueryAsync();
        if (updated > 0) Console.WriteLine($"  captioned {updated:N0} tiles for the hybrid side");
    }

    private static async Task<Sample> HybridLatencyAsync(CatalogStore store, Workload w, int k, int modelId)
    {
        var ms = new List<double>(w.Vectors.Length);
        for (var q = 0; q < w.Vectors.Length; q++)
        {
            var text = Captions[q % Captions.Length];
            var sw = Stopwatch.StartNew();
            await store.HybridSearchAsync(w.Vectors[q], text, k, 0, new SearchFilter(ModelId: modelId));
            ms.Add(sw.Elapsed.TotalMilliseconds);
        }
        return new Sample(Rounds.Percentile(ms, 50), [new("p95", "ms", Rounds.Percentile(ms, 95))]);
    }

    /// <summary>models/default's relevance calibration, loaded once (as the host caches it per model folder).</summary>
    private static RsCapRet.Queries.RelevanceCalibration ShippedCalibration()
    {
        var folder = Path.Combine(RsCapRet.Core.RepositoryPaths.FindRoot(), "models", "default");
        return RsCapRet.Queries.RelevanceCalibration.Load(folder)
               ?? throw new BenchArgsException($"--relevance: {folder} has no {RsCapRet.Queries.RelevanceCalibration.FileName}");
    }

    /// <summary>The "vector only" search followed by what a text query gets on top: each hit's calibrated relevance.</summary>
    private static async Task<Sample> RelevanceLatencyAsync(CatalogStore store, Workload w, int k, int modelId, RsCapRet.Queries.RelevanceCalibration calibration)
    {
        var ms = new List<double>(w.Vectors.Length);
        for (var q = 0; q < w.Vectors.Length; q++)
        {
            var sw = Stopwatch.StartNew();
            var hits = await store.SearchAsync(w.Vectors[q], k, new SearchFilter(ModelId: modelId));
            RsCapRet.Queries.RankedHits.Score(hits, w.Vectors[q], calibration);
            ms.Add(sw.Elapsed.TotalMilliseconds);
        }
        return new Sample(Rounds.Percentile(ms, 50), [new("p95", "ms", Rounds.Percentile(ms, 95))]);
    }

    private static async Task<Sample> LatencyAsync(CatalogStore store, Workload w, int k, int modelId, bool withBox)
    {
        var ms = new List<double>(w.Vectors.Length);
        var full = 0;
        for (var q = 0; q < w.Vectors.Length; q++)
        {
            var sw = Stopwatch.StartNew();
            // As the product searches (API, CLI, chat): within the serving model's vectors.
            var hits = await store.SearchAsync(w.Vectors[q], k, new SearchFilter(Area: withBox ? w.Boxes[q] : null, ModelId: modelId));
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

    /// <summary>What the catalogue takes on disk, per tile (the capacity plan's per-tile costs).</summary>
    private static async Task SizesAsync(NpgsqlDataSource ds, BenchReport report, int tiles)
    {
        await using var cmd = ds.CreateCommand("""
            SELECT (SELECT sum(pg_table_size(relid)) FROM pg_partition_tree('tiles') WHERE isleaf),
                   (SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('tiles_embedding_hnsw')),
                   (SELECT sum(pg_indexes_size(relid)) FROM pg_partition_tree('tiles') WHERE isleaf)
            """);
        await using var r = await cmd.ExecuteReaderAsync();
        await r.ReadAsync();
        double table = (double)r.GetDecimal(0), graph = (double)r.GetDecimal(1), indexes = (double)r.GetDecimal(2);
        report.Facts.Add(("table bytes per tile (heap and TOAST)", table / tiles));
        report.Facts.Add(("HNSW graph bytes per tile", graph / tiles));
        report.Facts.Add(("other indexes bytes per tile (primary key, unique, GiST, scene)", (indexes - graph) / tiles));
        report.Facts.Add(("table + indexes MB", (table + indexes) / 1048576));
    }

    /// <summary>Recall queries: the set's distribution, a seed of their own (not the latency queries).</summary>
    private static float[][] RecallWorkload(VectorSet set, int n)
    {
        var rng = new Random(777);
        return Enumerable.Range(0, n).Select(_ => set.Query(rng)).ToArray();
    }

    /// <summary>Every stored tile id and vector, by binary COPY.</summary>
    private static async Task<(long[] Ids, float[] Flat)> StoredVectorsAsync(NpgsqlDataSource ds)
    {
        var ids = new List<long>();
        var flat = new List<float>();
        await using var conn = await ds.OpenConnectionAsync();
        await using var export = await conn.BeginBinaryExportAsync("COPY (SELECT id, embedding FROM tiles) TO STDOUT (FORMAT BINARY)");
        while (await export.StartRowAsync() != -1)
        {
            ids.Add(await export.ReadAsync<long>());
            flat.AddRange((await export.ReadAsync<Vector>()).ToArray());
        }
        return (ids.ToArray(), flat.ToArray());
    }

    /// <summary>The exact k nearest tile ids by cosine distance for each query: brute force over every stored vector.</summary>
    private static (float[][] Queries, HashSet<long>[] Exact) ExactNeighbours((long[] Ids, float[] Flat) stored, float[][] queries, int k)
    {
        using var scope = torch.NewDisposeScope();
        var all = torch.nn.functional.normalize(torch.tensor(stored.Flat, [stored.Ids.Length, 256]), dim: 1);
        var q = torch.nn.functional.normalize(torch.tensor(queries.SelectMany(v => v).ToArray(), [queries.Length, 256]), dim: 1);
        var exact = new HashSet<long>[queries.Length];
        const int chunk = 100;
        for (var s = 0; s < queries.Length; s += chunk)
        {
            using var inner = torch.NewDisposeScope();
            var n = Math.Min(chunk, queries.Length - s);
            var (_, top) = torch.matmul(q.narrow(0, s, n), all.t()).topk(k, dim: 1);
            var rows = top.data<long>().ToArray();
            for (var i = 0; i < n; i++) exact[s + i] = rows.Skip(i * k).Take(k).Select(j => stored.Ids[j]).ToHashSet();
        }
        return (queries, exact);
    }

    /// <summary>Mean recall@k over the queries, and how many queries found all k and fewer than half of them.</summary>
    private static async Task<(double Recall, int Perfect, int BelowHalf)> RecallAsync(
        CatalogStore store, (float[][] Queries, HashSet<long>[] Exact) set, int k, int modelId)
    {
        var recall = 0.0;
        int perfect = 0, belowHalf = 0;
        for (var q = 0; q < set.Queries.Length; q++)
        {
            var found = (await store.SearchAsync(set.Queries[q], k, new SearchFilter(ModelId: modelId))).Count(h => set.Exact[q].Contains(h.TileId));
            recall += found / (double)k;
            if (found == k) perfect++;
            if (2 * found < k) belowHalf++;
        }
        return (recall / set.Queries.Length, perfect, belowHalf);
    }

    /// <summary>
    /// One pass of the function (vector only) and of the plain index scan right after the local cluster restarted
    /// with an empty buffer cache (scripts/db.sh restart --cold); null with a note when the database is not the local one.
    /// </summary>
    private static async Task<(Sample Function, Sample Plain)?> ColdPassAsync(string cs, Workload w, int k, int modelId)
    {
        var root = RsCapRet.Core.RepositoryPaths.FindRoot();
        var local = Path.Combine(root, ".data", "db.env");
        if (Environment.GetEnvironmentVariable(RsCapRetDatabase.ConnectionStringVariable) is { Length: > 0 } env && File.Exists(local)
            && env != RsCapRetDatabase.ParseEnvFile(local))
            throw new BenchArgsException("--cold restarts the local cluster (scripts/db.sh); RSCAPRET_DB names another database");
        Console.WriteLine("cold pass: restarting the local cluster with an empty buffer cache ...");
        using (var p = System.Diagnostics.Process.Start("bash", [Path.Combine(root, "scripts", "db.sh"), "restart", "--cold"]))
        {
            await p.WaitForExitAsync();
            if (p.ExitCode != 0) throw new InvalidOperationException($"scripts/db.sh restart --cold exited {p.ExitCode}");
        }
        NpgsqlConnection.ClearAllPools();
        await using var ds = RsCapRetDatabase.CreateDataSource(cs);
        var store = new CatalogStore(ds);
        var function = await LatencyAsync(store, w, k, modelId, withBox: false);
        var plain = await PlainScanLatencyAsync(ds, w, k);
        return (function, plain);
    }

    /// <summary>The summary line: the first ef's medians over the rounds, the recall, whether every bbox query returned k rows.</summary>
    private static void Summary(IReadOnlyList<SideResult> results, string ef, int tiles, int queries, int k, double recall, (Sample Function, Sample Plain)? cold)
    {
        SideResult Side(string name) => results.Single(r => r.Name == $"ef {ef}: {name}");
        double Extra(SideResult side, string name) => side.Extras().Single(e => e.Name == name).Summary.Median;
        var function = Side("vector only");
        var boxed = Side("vector+bbox");
        var kRowsOk = boxed.Samples.All(s => s.Extras!.Single(e => e.Name == "queries returning k rows").Value == queries)
                      && function.Samples.All(s => s.Extras!.Single(e => e.Name == "queries returning k rows").Value == queries);
        var line = new System.Text.Json.Nodes.JsonObject
        {
            ["tiles"] = tiles, ["queries"] = queries, ["k"] = k, ["recall_at_10"] = Math.Round(recall, 4),
            ["p50_ms"] = Math.Round(function.Headline.Median, 3), ["p95_ms"] = Math.Round(Extra(function, "p95"), 3),
            ["plain_p50_ms"] = Math.Round(Side("plain index scan").Headline.Median, 3), ["bbox_p50_ms"] = Math.Round(boxed.Headline.Median, 3),
            ["k_rows_ok"] = kRowsOk,
            ["cold_p50_ms"] = cold is { } c ? Math.Round(c.Function.Value, 3) : null,
            ["relevance_p50_ms"] = results.FirstOrDefault(r => r.Name == $"ef {ef}: vector + relevance") is { } scored ? Math.Round(scored.Headline.Median, 3) : null,
        };
        Console.WriteLine(line.ToJsonString());
    }

    private static async Task LoadAsync(NpgsqlDataSource ds, string connectionString, CatalogStore store, int modelId, int tiles, VectorSet set)
    {
        Console.WriteLine($"loading {tiles:N0} synthetic tiles ...");
        var sw = Stopwatch.StartNew();
        // Bulk load without the index, then build each model's graph as migration 0016 defines it.
        await using (var drop = ds.CreateCommand("DROP INDEX IF EXISTS tiles_embedding_hnsw")) await drop.ExecuteNonQueryAsync();
        var rng = new Random(42);
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
                    set.Tile(rng)));
            }
            await store.CompleteSceneAsync(claim, new SceneMetadata(side * 224, side * 224, 3, null, 32614 + zone, null,
                new DateTimeOffset(2018 + s % 5, 6, 1, 0, 0, 0, TimeSpan.Zero)), list, modelId, 0);
        }
        Console.WriteLine($"  copied in {sw.Elapsed.TotalSeconds:F0} s ({tiles / sw.Elapsed.TotalSeconds:F0} tiles/s); building HNSW index ...");
        sw.Restart();
        await using (var conn = await ds.OpenConnectionAsync())
        {
            await using (var idx = new NpgsqlCommand("SET maintenance_work_mem = '2GB'; SELECT rscapret_create_tile_vector_index()", conn))
                await idx.ExecuteNonQueryAsync();
            await TileVectorIndex.BuildMissingAsync(connectionString, conn, line => Console.WriteLine("  " + line));
        }
        // Settle before anything is timed: VACUUM sets the freshly copied rows' hint bits (else the first run's reads
        // set them, writing pages as they go) and the checkpoint writes the load's dirty pages out. A run right after
        // the load was 38 % slower than the next run without this, 18 % with it (docs/benchmarks.md).
        foreach (var settle in new[] { "VACUUM (ANALYZE) tiles", "VACUUM (ANALYZE) scenes", "CHECKPOINT" })
        {
            await using var cmd = ds.CreateCommand(settle);
            cmd.CommandTimeout = 0;
            await cmd.ExecuteNonQueryAsync();
        }
        Console.WriteLine($"  index built in {sw.Elapsed.TotalSeconds:F0} s ({sw.Elapsed.TotalSeconds * 1e6 / tiles:F0} s per million tiles)");
    }

    private static float[][] RandomVectors(Random rng, int n) =>
        Enumerable.Range(0, n).Select(_ => Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray()).ToArray();

    private static float[] Noisy(float[] centre, Random rng, float noise) =>
        centre.Select(v => v + noise * (float)(rng.NextDouble() * 2 - 1)).ToArray();

}
