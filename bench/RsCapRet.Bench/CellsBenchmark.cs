using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Pipeline;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Bench;

/// <summary>
/// Issue 30's costs: `ingest` against `ingest --cells` on the same scene in the same rounds (tiles/s, and the bytes
/// tile_cells takes per tile), then localising a query inside one tile three ways — its imagery re-read with the
/// scene file evicted from the page cache, re-read with it cached, and from its stored cells — p50 of --calls calls
/// per round each.
/// </summary>
public static class CellsBenchmark
{
    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var size = a.Int("--size", 2240);
        var calls = a.Int("--calls", 15);
        var batchSize = a.Int("--batch", new IngestOptions().BatchSize);
        var modelDir = a.String("--model", Path.Combine(RepositoryPaths.FindRoot(), "models", "default"));
        var query = a.String("--query", "trees");
        var (warmup, rounds) = a.RoundCounts();

        var admin = RsCapRetDatabase.ResolveConnectionString();
        const string db = "rscapret_bench_cells";
        await BenchDatabase.DropAsync(admin, db);
        var cs = await BenchDatabase.EnsureAsync(admin, db);
        try
        {
            await using var ds = await RsCapRetDatabase.OpenAsync(cs);
            var store = new CatalogStore(ds);
            using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
            var scene = a.String("--scene") ?? await IngestBenchmark.SyntheticSceneAsync(size, RsCapRetConfig.Load(modelDir).Gsd ?? 0.8);
            var env = await BenchEnvironment.CollectAsync(torch: true, cs);
            var report = new BenchReport("cells", env);
            report.Options["scene"] = scene;
            report.Options["size"] = a.String("--scene") is null ? size : null;
            report.Options["batch"] = batchSize;
            report.Options["calls"] = calls;
            report.Options["query"] = query;
            report.Options["model"] = Path.GetFullPath(modelDir);
            Console.WriteLine($"scene: {scene}; model {modelDir}; batch {batchSize}, no captions");

            // 1. Ingest throughput with and without cells; storage measured after each --cells round.
            var ingestSides = new List<Side>
            {
                new("ingest", "tiles/s", () => IngestAsync(ds, store, encoder, scene, batchSize, cells: false)),
                new("ingest --cells", "tiles/s", () => IngestAsync(ds, store, encoder, scene, batchSize, cells: true)),
            };
            var ingestResults = await Rounds.RunAsync(ingestSides, warmup, rounds);

            // 2. Localising one tile (the scene's centre tile), the query's vector made once.
            await IngestAsync(ds, store, encoder, scene, batchSize, cells: true);
            var tileId = await CentreTileAsync(ds);
            var modelId = await ModelIdAsync(ds);
            var vector = encoder.EmbedText(query);
            var files = new RegisteredSceneFiles();
            var tile = await store.GetTileAsync(tileId) ?? throw new InvalidOperationException($"no tile {tileId}");
            report.Facts.Add(("tile", $"{tileId} (window {tile.PxWidth}x{tile.PxHeight}+{tile.PxX}+{tile.PxY} of {tile.ScenePath})"));
            var evicts = PageCache.Evict(scene);
            report.Facts.Add(("page cache eviction", evicts ?? "posix_fadvise(DONTNEED) on the scene file before each uncached call"));
            async Task<TileLocalization> FromImagery() => await TileLocalizer.LocalizeAsync(store, files, tileId, encoder.InputSize, query,
                image => (encoder.EncodeCells([image])[0], vector), CancellationToken.None);
            async Task<TileLocalization> FromStore() => await TileLocalizer.FromStoredAsync(store, tileId, modelId, query,
                () => Task.FromResult<float[]?>(vector), CancellationToken.None) ?? throw new InvalidOperationException("no stored cells");
            var localizeSides = new List<Side>
            {
                new("localize: imagery not cached", "ms p50", () => P50Async(calls, FromImagery, () => PageCache.Evict(scene))),
                new("localize: imagery cached", "ms p50", () => P50Async(calls, FromImagery, null)),
                new("localize: stored cells", "ms p50", () => P50Async(calls, FromStore, null)),
                new("text query vector (beside)", "ms p50", () => P50Async(calls, () => { encoder.EmbedText(query); return Task.CompletedTask; }, null)),
            };
            var localizeResults = await Rounds.RunAsync(localizeSides, warmup, rounds);

            // 3. classify --cells on a large scene's stored cells: a synthetic catalogue (random cell vectors; the cost
            // does not depend on their values) of a classifySize² px scene at the model's input size, the 40 default labels.
            var classifySize = a.Int("--classify-size", 20000);
            var (classifyScene, classifyTiles) = await SyntheticCellSceneAsync(ds, store, modelId, classifySize, encoder.InputSize);
            var t0 = Stopwatch.GetTimestamp();
            var labelQuery = LandUseQuery.Parse(classifyScene.ToString(CultureInfo.InvariantCulture), null, null, null);
            var prompts = encoder.EmbedTexts(labelQuery.Prompts);
            var embedSeconds = Stopwatch.GetElapsedTime(t0).TotalSeconds;
            report.Facts.Add(("classify scene", FormattableString.Invariant(
                $"{classifySize}x{classifySize} px, {classifyTiles} tiles of {encoder.InputSize} px with stored cells (synthetic catalogue, random cell vectors), {labelQuery.Labels.Count} default labels embedded once in {embedSeconds:F2} s")));
            var outDir = Directory.CreateTempSubdirectory("rscapret-bench-classify-");
            async Task<LandUseMap> TileMap() => await LandUseClassifier.RunAsync(store, labelQuery, _ => Task.FromResult((modelId, (IReadOnlyList<float[]>)prompts)), CancellationToken.None);
            var classifySides = new List<Side>
            {
                new("classify: tile map", "s", async () =>
                {
                    var t = Stopwatch.GetTimestamp();
                    var map = await TileMap();
                    map.WriteGeoTiff(Path.Combine(outDir.FullName, "tiles.tif"));
                    return new Sample(Stopwatch.GetElapsedTime(t).TotalSeconds);
                }),
                new("classify --cells: tile map + cell map", "s", async () =>
                {
                    var t = Stopwatch.GetTimestamp();
                    var map = await TileMap();
                    map.WriteGeoTiff(Path.Combine(outDir.FullName, "tiles.tif"));
                    var cellStart = Stopwatch.GetTimestamp();
                    var cellMap = await CellLandUseMap.BuildAsync(store, map, prompts, CancellationToken.None);
                    cellMap.WriteGeoTiff(Path.Combine(outDir.FullName, "cells.tif"));
                    return new Sample(Stopwatch.GetElapsedTime(t).TotalSeconds,
                        [new Metric("cell map alone", "s", Stopwatch.GetElapsedTime(cellStart).TotalSeconds), new Metric("cell map width", "px", cellMap.Width)]);
                }),
            };
            var classifyResults = await Rounds.RunAsync(classifySides, warmup, rounds);
            outDir.Delete(true);
            var check = await FromStore();
            var reread = await FromImagery();
            report.Facts.Add(("check", FormattableString.Invariant(
                $"hottest cell stored r{check.Hottest.Row}c{check.Hottest.Col} {check.Hottest.Score:F3}, re-read r{reread.Hottest.Row}c{reread.Hottest.Col} {reread.Hottest.Score:F3}; tile score stored {check.TileScore:F4}, re-read {reread.TileScore:F4}")));
            report.Notes.Add("ingest sides: the real SceneIngestor into an emptied catalogue each round, no captions; bytes per tile: pg_total_relation_size(tile_cells) / " +
                             "tiles with cells (table, TOAST, primary key) beside the tiles partitions' total (heap, indexes, HNSW graph) per tile.");
            report.Notes.Add("localize sides: TileLocalizer as GET /api/tiles/{id}/cells runs it, without HTTP and with the query vector made once (its own cost is the last side); " +
                             "'not cached' evicts the scene file's pages before each call; stored cells read 25 kB from PostgreSQL and need no imagery and no image pass.");
            report.Notes.Add("classify sides: LandUseClassifier (the tile map, scored in SQL) and CellLandUseMap (every stored cell against every label, " +
                             "streamed from tile_cells) as `classify --cells` runs them after its prompts are embedded, GeoTIFFs written to a temp folder.");
            report.Print([.. ingestResults, .. localizeResults, .. classifyResults],
                [new RatioSpec("ingest --cells", "ingest"), new RatioSpec("localize: imagery cached", "localize: stored cells")], warmup, rounds);
            await ds.DisposeAsync();
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await BenchDatabase.DropAsync(admin, db);
        }
        return 0;
    }

    private static async Task<Sample> IngestAsync(NpgsqlDataSource ds, CatalogStore store, RsCapRetTileEncoder encoder, string scene, int batchSize, bool cells)
    {
        // The same bytes would otherwise be "already ingested"; TRUNCATE also gives the tables fresh files to measure.
        await using (var truncate = ds.CreateCommand("TRUNCATE tiles, scenes RESTART IDENTITY CASCADE")) await truncate.ExecuteNonQueryAsync();
        var sw = Stopwatch.StartNew();
        var result = await new SceneIngestor(store, encoder).IngestAsync(scene, new IngestOptions { Caption = false, BatchSize = batchSize, Cells = cells });
        var seconds = sw.Elapsed.TotalSeconds;
        if (result.Outcome != IngestOutcome.Ingested) throw new InvalidOperationException($"ingestion ended {result.OutcomeText}: {result.Error}");
        var storage = await store.CellStorageAsync();
        var extras = new List<Metric>
        {
            new("tiles", "count", result.Tiles),
            new("tiles table per tile", "bytes", (double)storage.TilesTableBytes / Math.Max(1, storage.Tiles)),
        };
        if (cells) extras.Add(new Metric("tile_cells per tile", "bytes", storage.BytesPerTile));
        return new Sample(result.Tiles / seconds, extras);
    }

    /// <summary>A completed scene of size² px in tiles of <paramref name="tile"/> px (UTM 14N, 0.343 m/px), each with 7 × 7 random unit cell vectors.</summary>
    private static async Task<(long SceneId, int Tiles)> SyntheticCellSceneAsync(NpgsqlDataSource ds, CatalogStore store, int modelId, int size, int tile)
    {
        var sw = Stopwatch.StartNew();
        await using (var drop = ds.CreateCommand("DROP INDEX IF EXISTS tiles_embedding_hnsw")) await drop.ExecuteNonQueryAsync();
        var side = (size + tile - 1) / tile;
        const double gsd = 0.343;
        var utm = new NetTopologySuite.Geometries.GeometryFactory(new NetTopologySuite.Geometries.PrecisionModel(), 32614);
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/archive/classify_{size}.tif", $"bench-classify-{size}", 1), modelId, TimeSpan.FromHours(1)))!;
        var rng = new Random(30);
        float[] Unit(int n)
        {
            var v = new float[n];
            double norm = 0;
            for (var i = 0; i < n; i++) { v[i] = (float)(rng.NextDouble() * 2 - 1); norm += v[i] * v[i]; }
            for (var i = 0; i < n; i++) v[i] /= (float)Math.Sqrt(norm);
            return v;
        }
        await using (var writer = await store.BeginSceneTilesAsync(claim, modelId))
        {
            for (var r = 0; r < side; r++)
            {
                var batch = new List<TileRecord>(side);
                for (var c = 0; c < side; c++)
                {
                    // The last column and row flush with the scene's edge, as the tiler places them.
                    int px = Math.Min(c * tile, size - tile), py = Math.Min(r * tile, size - tile);
                    double x0 = 500_000 + px * gsd, y0 = 5_200_000 - py * gsd, edge = tile * gsd;
                    batch.Add(new TileRecord(r, c, px, py, tile, tile, null, BenchGeometry.Box(x0, y0 - edge, x0 + edge, y0, utm), 0, null, Unit(256))
                    { Cells = new CellVectors(7, 7, Enumerable.Range(0, 49).Select(_ => Unit(256)).ToArray()) });
                }
                await writer.WriteAsync(batch);
            }
            await writer.CompleteAsync(new SceneMetadata(size, size, 3, null, 32614, null, null), 0);
        }
        await using (var an = ds.CreateCommand("ANALYZE tiles; ANALYZE tile_cells")) await an.ExecuteNonQueryAsync();
        Console.WriteLine($"synthetic {size}x{size} px scene: {side * side} tiles with cells loaded in {sw.Elapsed.TotalSeconds:F0} s");
        return (claim.SceneId, side * side);
    }

    private static async Task<long> CentreTileAsync(NpgsqlDataSource ds)
    {
        await using var cmd = ds.CreateCommand("SELECT id FROM tiles ORDER BY abs(grid_row - (SELECT max(grid_row) / 2 FROM tiles)) + abs(grid_col - (SELECT max(grid_col) / 2 FROM tiles)), id LIMIT 1");
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task<int> ModelIdAsync(NpgsqlDataSource ds)
    {
        await using var cmd = ds.CreateCommand("SELECT model_id FROM tiles LIMIT 1");
        return (int)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>The median of <paramref name="calls"/> timed calls, <paramref name="before"/> run off the clock before each.</summary>
    private static async Task<Sample> P50Async(int calls, Func<Task> call, Func<string?>? before)
    {
        var ms = new List<double>(calls);
        for (var i = 0; i < calls; i++)
        {
            before?.Invoke();
            var t = Stopwatch.GetTimestamp();
            await call();
            ms.Add(Stopwatch.GetElapsedTime(t).TotalMilliseconds);
        }
        return new Sample(Rounds.Percentile(ms, 50), [new Metric("p95", "ms", Rounds.Percentile(ms, 95))]);
    }

    /// <summary>Drops a file's pages from the OS page cache (clean pages only; what a first read after a while would meet).</summary>
    private static class PageCache
    {
        [DllImport("libc", SetLastError = true)]
        private static extern int posix_fadvise(int fd, long offset, long len, int advice);
        private const int DontNeed = 4;

        /// <summary>Null when done; else why not.</summary>
        public static string? Evict(string path)
        {
            using var f = File.OpenHandle(path);
            var rc = posix_fadvise((int)f.DangerousGetHandle(), 0, 0, DontNeed);
            return rc == 0 ? null : $"posix_fadvise failed ({rc}): the 'not cached' side may read cached pages";
        }
    }
}
