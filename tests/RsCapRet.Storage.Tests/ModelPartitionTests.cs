using NetTopologySuite.Geometries;
using Npgsql;
using Pgvector;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// Migration 0016: tiles partitioned by model, one halfvec HNSW graph per partition, searches ranked by the
/// full-precision distance; and the upgrade of a catalogue made before it.
/// </summary>
public class ModelPartitionTests
{
    private static readonly GeometryFactory Utm = new(new PrecisionModel(), 32631);

    internal static async Task<long> SeedSceneAsync(CatalogStore store, string name, int modelId, IReadOnlyList<float[]> vectors, double lonOffset = 0)
    {
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/{name}.tif", "sha-" + name, 1), modelId, TimeSpan.FromMinutes(5)))!;
        var side = (int)Math.Ceiling(Math.Sqrt(vectors.Count));
        var tiles = vectors.Select((v, i) =>
        {
            int r = i / side, c = i % side;
            double x = lonOffset + c * 0.01, y = r * 0.01;
            return new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(x, y, x + 0.01, y + 0.01),
                SearchTests.Box(c, r, c + 1, r + 1, Utm), 0, $"{name} {r},{c}", v);
        }).ToList();
        await store.CompleteSceneAsync(claim, new SceneMetadata(side * 224, side * 224, 3, null, 32631, null, null), tiles, modelId, 0);
        return claim.SceneId;
    }

    /// <summary>A scene as a catalogue made before migration 0018 holds it (the store's statements need 0018's columns).</summary>
    private static async Task SeedLegacySceneAsync(NpgsqlDataSource ds, string name, int modelId, List<float[]> vectors, double lonOffset = 0)
    {
        var side = (int)Math.Ceiling(Math.Sqrt(vectors.Count));
        var sceneId = await ScalarAsync<long>(ds, """
            INSERT INTO scenes (path, content_sha256, size_bytes, model_id, status, tile_count, crs_epsg)
            VALUES ($1, $2, 1, $3, 'done', $4, 32631) RETURNING id
            """, $"/{name}.tif", "sha-" + name, modelId, vectors.Count);
        for (var i = 0; i < vectors.Count; i++)
        {
            int r = i / side, c = i % side;
            double x = lonOffset + c * 0.01, y = r * 0.01;
            await using var cmd = ds.CreateCommand("""
                INSERT INTO tiles (scene_id, model_id, grid_row, grid_col, px_x, px_y, px_width, px_height, footprint, footprint_native, nodata_fraction, caption, embedding)
                VALUES ($1, $2, $3, $4, $5, $6, 224, 224, $7, $8, 0, $9, $10)
                """);
            foreach (var v in new object[] { sceneId, modelId, r, c, c * 224, r * 224, SearchTests.Box(x, y, x + 0.01, y + 0.01), SearchTests.Box(c, r, c + 1, r + 1, Utm), $"{name} {r},{c}", new Vector(vectors[i]) })
                cmd.Parameters.Add(new() { Value = v });
            await cmd.ExecuteNonQueryAsync();
        }
    }

    private static List<float[]> Clustered(Random rng, int n, int clusters)
    {
        var centres = Enumerable.Range(0, clusters).Select(_ => SingleStatementSearchFixture.RandomVector(rng)).ToArray();
        return Enumerable.Range(0, n).Select(_ => SingleStatementSearchFixture.Noisy(centres[rng.Next(clusters)], rng, 0.6f)).ToList();
    }

    internal static async Task<T> ScalarAsync<T>(NpgsqlDataSource ds, string sql, params object[] args)
    {
        await using var cmd = ds.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    [Fact]
    public async Task EachModelHasItsOwnPartitionAndGraph()
    {
        await using var db = new TestDatabase();
        await db.InitializeAsync();
        var store = new CatalogStore(db.DataSource);
        var a = await store.RegisterModelAsync(new ModelIdentity("part-a", "1", "llm", "vision", "ha"));
        var b = await store.RegisterModelAsync(new ModelIdentity("part-b", "1", "llm", "vision", "hb"));
        Assert.Equal(a, await store.RegisterModelAsync(new ModelIdentity("part-a", "1", "llm", "vision", "ha"))); // again: no new partition
        var rng = new Random(3);
        await SeedSceneAsync(store, "a", a, Clustered(rng, 400, 8));
        await SeedSceneAsync(store, "b", b, Clustered(rng, 300, 8));

        // Rows land in their model's partition only.
        await using (var cmd = db.DataSource.CreateCommand("SELECT tableoid::regclass::text, model_id, count(*) FROM tiles GROUP BY 1, 2 ORDER BY 2"))
        await using (var r = await cmd.ExecuteReaderAsync())
        {
            var rows = new List<(string, int, long)>();
            while (await r.ReadAsync()) rows.Add((r.GetString(0), r.GetInt32(1), r.GetInt64(2)));
            Assert.Equal([($"tiles_m{a}", a, 400L), ($"tiles_m{b}", b, 300L)], rows);
        }
        // Each partition has a valid graph of its own under tiles_embedding_hnsw, on the halfvec expression.
        await using (var conn = await db.DataSource.OpenConnectionAsync())
        {
            var parts = await TileVectorIndex.PartitionsAsync(conn);
            Assert.Equal([a, b], parts.Select(p => p.ModelId));
            Assert.All(parts, p => Assert.True(p.Index != null && p.Valid, $"{p.Table}: graph {p.Index ?? "none"}"));
            Assert.Equal(2, parts.Select(p => p.Index).Distinct().Count());
            Assert.Empty(await TileVectorIndex.BuildMissingAsync(db.ConnectionString, conn));
        }
        Assert.Contains("halfvec_cosine_ops", await ScalarAsync<string>(db.DataSource, "SELECT pg_get_indexdef('tiles_embedding_hnsw'::regclass)"));

        // A search with a model filter reads that model's graph alone; its hits are that model's tiles.
        var query = new Vector(Clustered(new Random(9), 1, 1)[0]);
        await using (var cmd = db.DataSource.CreateCommand("""
            EXPLAIN (COSTS OFF) SELECT tile_id FROM tile_catalog WHERE model_id = $1
             ORDER BY embedding::halfvec(256) <=> $2::halfvec(256) LIMIT 20
            """))
        {
            cmd.Parameters.Add(new() { Value = b });
            cmd.Parameters.Add(new() { Value = query });
            var plan = new List<string>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) plan.Add(r.GetString(0));
            var text = string.Join("\n", plan);
            Assert.Contains($"tiles_m{b}_", text);
            Assert.DoesNotContain($"tiles_m{a}", text);
            Assert.Contains("Index Scan", text);
        }
        var hits = await store.SearchAsync(query.ToArray(), 25, new SearchFilter(ModelId: b));
        Assert.Equal(25, hits.Count);
        var ofB = await ScalarAsync<long>(db.DataSource, "SELECT count(*) FROM tiles WHERE model_id = $1 AND id = ANY($2)", b, hits.Select(h => h.TileId).ToArray());
        Assert.Equal(25L, ofB);
    }

    [Fact]
    public async Task HalfvecCandidatesAreRankedByTheFullPrecisionDistance()
    {
        await using var db = new TestDatabase();
        await db.InitializeAsync();
        var store = new CatalogStore(db.DataSource);
        var model = await store.RegisterModelAsync(new ModelIdentity("halfvec", "1", "llm", "vision", "h"));
        var rng = new Random(11);
        // Near-twins: pairs that differ below half precision (about 1e-3 relative), so their halfvec distances tie
        // or come in the wrong order, and only the full-precision distance orders them.
        var vectors = Clustered(rng, 500, 6);
        var twins = new List<float[]>();
        for (var i = 0; i < 100; i++)
        {
            var v = vectors[rng.Next(vectors.Count)];
            twins.Add(v.Select((x, j) => x + (j % 7 == i % 7 ? 2e-4f : 0f)).ToArray());
        }
        await SeedSceneAsync(store, "h", model, [.. vectors, .. twins]);

        var qrng = new Random(12);
        int checkedSearches = 0, halfvecOrderDiffered = 0;
        for (var q = 0; q < 30; q++)
        {
            var query = q % 3 == 0 ? twins[qrng.Next(twins.Count)] : SingleStatementSearchFixture.Noisy(vectors[qrng.Next(vectors.Count)], qrng, 0.3f);
            foreach (var k in new[] { 10, 40 })
            {
                var hits = await store.SearchAsync(query, k, new SearchFilter(ModelId: model));
                var exact = await store.SearchAsync(query, k, new SearchFilter(ModelId: model, Exact: true));
                Assert.Equal(k, hits.Count);
                // The distances are the full-precision ones, recomputed here for the returned rows ...
                await using (var cmd = db.DataSource.CreateCommand("SELECT id, (embedding <=> $1)::double precision FROM tiles WHERE id = ANY($2)"))
                {
                    cmd.Parameters.Add(new() { Value = new Vector(query) });
                    cmd.Parameters.Add(new() { Value = hits.Select(h => h.TileId).ToArray() });
                    var full = new Dictionary<long, double>();
                    await using var r = await cmd.ExecuteReaderAsync();
                    while (await r.ReadAsync()) full[r.GetInt64(0)] = r.GetDouble(1);
                    Assert.All(hits, h => Assert.Equal(full[h.TileId], h.Distance));
                }
                // ... the rows come in (distance, tile_id) order, and they are the exact search's rows.
                Assert.Equal(hits.OrderBy(h => h.Distance).ThenBy(h => h.TileId).Select(h => h.TileId), hits.Select(h => h.TileId));
                Assert.Equal(exact.Select(h => h.Distance), hits.Select(h => h.Distance));
                checkedSearches++;
                // How often the order of the halfvec distances alone would have been different.
                await using (var cmd = db.DataSource.CreateCommand("""
                    SELECT array_agg(id ORDER BY embedding::halfvec(256) <=> $1::halfvec(256), id) FROM tiles WHERE id = ANY($2)
                    """))
                {
                    cmd.Parameters.Add(new() { Value = new Vector(query) });
                    cmd.Parameters.Add(new() { Value = hits.Select(h => h.TileId).ToArray() });
                    var byHalf = (long[])(await cmd.ExecuteScalarAsync())!;
                    if (!byHalf.SequenceEqual(hits.Select(h => h.TileId))) halfvecOrderDiffered++;
                }
            }
        }
        Assert.Equal(60, checkedSearches);
        // The twins make the refinement matter: without it, some answers would come in another order.
        Assert.True(halfvecOrderDiffered > 0, "the halfvec order equalled the full-precision order in every search: the test does not exercise the refinement");
    }

    [Fact]
    public async Task UpgradeFromAnUnpartitionedCatalogueKeepsEveryTileAndBuildsEachGraph()
    {
        await using var db = new TestDatabase { MigrateThrough = 15 };
        await db.InitializeAsync();
        var store = new CatalogStore(db.DataSource);
        var a = await store.RegisterModelAsync(new ModelIdentity("old-a", "1", "llm", "vision", "ha"));
        var b = await store.RegisterModelAsync(new ModelIdentity("old-b", "1", "llm", "vision", "hb"));
        var rng = new Random(5);
        await SeedLegacySceneAsync(db.DataSource, "a", a, Clustered(rng, 300, 5));
        await SeedLegacySceneAsync(db.DataSource, "b", b, Clustered(rng, 200, 5), lonOffset: 3);
        const string everyTile = """
            SELECT string_agg(t::text, E'\n' ORDER BY id) FROM (SELECT id, scene_id, model_id, grid_row, grid_col, px_x, px_y,
                   px_width, px_height, footprint, footprint_native, nodata_fraction, caption, embedding FROM tiles) t
            """;
        var before = await ScalarAsync<string>(db.DataSource, everyTile);
        var maxId = await ScalarAsync<long>(db.DataSource, "SELECT max(id) FROM tiles");
        var query = Clustered(new Random(6), 1, 1)[0];
        var exactBefore = new List<(long, double)>();
        await using (var search = db.DataSource.CreateCommand("SELECT tile_id, distance FROM rscapret_search(query => $1, k => 15, model => $2, exact => true)"))
        {
            search.Parameters.Add(new() { Value = new Vector(query) });
            search.Parameters.Add(new() { Value = a });
            await using var r = await search.ExecuteReaderAsync();
            while (await r.ReadAsync()) exactBefore.Add((r.GetInt64(0), r.GetDouble(1)));
        }

        var log = new List<string>();
        var applied = await MigrationRunner.ApplyAsync(db.ConnectionString, log: line => { lock (log) log.Add(line); });
        Assert.Contains(16, applied);
        Assert.Equal(before, await ScalarAsync<string>(db.DataSource, everyTile));
        // Both partitions' graphs were built concurrently by the runner, and are attached and valid.
        Assert.Contains(log, l => l.Contains($"tiles_m{a}_embedding_hnsw: built and attached", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains($"tiles_m{b}_embedding_hnsw: built and attached", StringComparison.Ordinal));
        await using (var conn = await db.DataSource.OpenConnectionAsync())
            Assert.All(await TileVectorIndex.PartitionsAsync(conn), p => Assert.True(p.Valid, $"{p.Table}: {p.Index ?? "no graph"}"));
        Assert.True(await ScalarAsync<bool>(db.DataSource, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'tiles_embedding_hnsw'::regclass"));

        // Searches answer as before; new tiles continue the identity sequence; a new model gets its partition.
        var hits = await store.SearchAsync(query, 15, new SearchFilter(ModelId: a));
        Assert.Equal(exactBefore, hits.Select(h => (h.TileId, h.Distance)));
        // 0018 made each scene a version of its path, shown there and searchable as before.
        Assert.Equal(2L, await ScalarAsync<long>(db.DataSource, "SELECT count(*) FROM scene_paths WHERE status = 'current' AND scene_id IS NOT NULL"));
        var c = await store.RegisterModelAsync(new ModelIdentity("new-c", "1", "llm", "vision", "hc"));
        await SeedSceneAsync(store, "c", c, Clustered(rng, 50, 3));
        Assert.True(await ScalarAsync<long>(db.DataSource, "SELECT min(id) FROM tiles WHERE model_id = $1", c) > maxId);
        Assert.Equal($"tiles_m{c}", await ScalarAsync<string>(db.DataSource, "SELECT DISTINCT tableoid::regclass::text FROM tiles WHERE model_id = $1", c));
    }

    [Fact]
    public async Task MissingGraphsAreRebuiltAndALeftoverIndexIsReplaced()
    {
        await using var db = new TestDatabase();
        await db.InitializeAsync();
        var store = new CatalogStore(db.DataSource);
        var a = await store.RegisterModelAsync(new ModelIdentity("rebuild-a", "1", "llm", "vision", "ha"));
        var b = await store.RegisterModelAsync(new ModelIdentity("rebuild-b", "1", "llm", "vision", "hb"));
        var rng = new Random(8);
        await SeedSceneAsync(store, "a", a, Clustered(rng, 200, 4));
        await SeedSceneAsync(store, "b", b, Clustered(rng, 200, 4));
        // What the benchmarks do for a bulk load: drop the index, recreate its definition, and build the graphs later;
        // and an index of the partition's graph name left behind unattached (as a cancelled concurrent build leaves one).
        await using var conn = await db.DataSource.OpenConnectionAsync();
        await using (var cmd = new NpgsqlCommand("DROP INDEX tiles_embedding_hnsw; SELECT rscapret_create_tile_vector_index()", conn)) await cmd.ExecuteNonQueryAsync();
        await using (var cmd = new NpgsqlCommand($"CREATE INDEX tiles_m{a}_embedding_hnsw ON tiles_m{a} (id)", conn)) await cmd.ExecuteNonQueryAsync();
        Assert.All(await TileVectorIndex.PartitionsAsync(conn), p => Assert.Null(p.Index));

        var log = new List<string>();
        var built = await TileVectorIndex.BuildMissingAsync(db.ConnectionString, conn, line => { lock (log) log.Add(line); });
        Assert.Equal([$"tiles_m{a}", $"tiles_m{b}"], built);
        Assert.Contains(log, l => l.Contains($"tiles_m{a}_embedding_hnsw: exists but is not attached to tiles_embedding_hnsw", StringComparison.Ordinal));
        Assert.All(await TileVectorIndex.PartitionsAsync(conn), p => Assert.True(p.Valid && p.Index == p.Table + "_embedding_hnsw", $"{p.Table}: {p.Index}"));
        Assert.Contains("hnsw", await ScalarAsync<string>(db.DataSource, $"SELECT pg_get_indexdef('tiles_m{a}_embedding_hnsw'::regclass)"));
        var hits = await store.SearchAsync(Clustered(new Random(2), 1, 1)[0], 10, new SearchFilter(ModelId: b));
        Assert.Equal(10, hits.Count);
    }
}
