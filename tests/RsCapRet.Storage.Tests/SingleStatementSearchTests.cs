using System.Text.RegularExpressions;
using NetTopologySuite.Geometries;
using Npgsql;
using NpgsqlTypes;
using Pgvector;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// Two scene files, each ingested with two models (four done scenes of 30 x 30 tiles), and a failed scene that
/// kept an earlier run's tiles; clustered vectors with exact duplicates, so that distances tie. Beside the current
/// search functions, the two-query ones of migrations 0006 and 0005 under the names old_rscapret_search and
/// old_rscapret_search_by_tile, to compare with.
/// </summary>
public sealed class SingleStatementSearchFixture : IAsyncLifetime
{
    public readonly TestDatabase Db = new();
    public int ModelA, ModelB;
    public long SceneA1, SceneA2, SceneB1, SceneB2, FailedScene; // file A or B, model A (1) or B (2)
    public const int GridSide = 30;
    public readonly DateTimeOffset TimeA = new(2019, 5, 1, 0, 0, 0, TimeSpan.Zero), TimeB = new(2021, 9, 15, 0, 0, 0, TimeSpan.Zero);
    public float[][] Centres = [];

    public async Task InitializeAsync()
    {
        await Db.InitializeAsync();
        var store = new CatalogStore(Db.DataSource);
        ModelA = await store.RegisterModelAsync(new ModelIdentity("single-a", "1", "llm", "vision", "ha"));
        ModelB = await store.RegisterModelAsync(new ModelIdentity("single-b", "1", "llm", "vision", "hb"));
        var rng = new Random(17);
        Centres = Enumerable.Range(0, 12).Select(_ => RandomVector(rng)).ToArray();
        float[][]? firstA = null;
        (SceneA1, firstA) = await Seed(store, rng, "a", ModelA, 0.0, TimeA, GridSide, null);
        // The same file with the other model: some tiles keep the first model's vectors (ties across models).
        (SceneA2, _) = await Seed(store, rng, "a", ModelB, 0.0, TimeA, GridSide, firstA);
        (SceneB1, _) = await Seed(store, rng, "b", ModelA, 5.0, TimeB, GridSide, null);
        (SceneB2, _) = await Seed(store, rng, "b", ModelB, 5.0, TimeB, GridSide, null);
        (FailedScene, _) = await Seed(store, rng, "c", ModelA, 0.0, new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), 10, null);
        // A failed scene keeps an earlier run's tiles (CatalogStore.FailSceneAsync); searches must not return them.
        await using (var cmd = Db.DataSource.CreateCommand($"UPDATE scenes SET status = 'failed' WHERE id = {FailedScene}"))
            await cmd.ExecuteNonQueryAsync();
        await using (var cmd = Db.DataSource.CreateCommand(OldFunctionsSql())) await cmd.ExecuteNonQueryAsync();
        await using (var cmd = Db.DataSource.CreateCommand("ANALYZE tiles; ANALYZE scenes; ANALYZE models")) await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>rscapret_search as 0006 defined it and rscapret_search_by_tile as 0005 did, renamed old_*.</summary>
    internal static string OldFunctionsSql()
    {
        var migrations = MigrationRunner.Embedded();
        string Function(int version, string start)
        {
            var sql = migrations.Single(m => m.Version == version).Sql;
            var from = sql.IndexOf(start, StringComparison.Ordinal);
            var to = sql.IndexOf("\n$$;", from, StringComparison.Ordinal) + "\n$$;".Length;
            return sql[from..to];
        }
        var search = Function(6, "CREATE OR REPLACE FUNCTION rscapret_search(");
        var byTile = Function(5, "CREATE FUNCTION rscapret_search_by_tile(");
        if (!search.Contains("ids := ARRAY(", StringComparison.Ordinal) || !byTile.Contains("FROM rscapret_search(q, k + 1", StringComparison.Ordinal))
            throw new InvalidOperationException("Migrations 0005/0006 no longer hold the two-query search functions this fixture expects.");
        return Regex.Replace(search + "\n" + byTile, @"\brscapret_search(_by_tile)?\(", "old_rscapret_search$1(");
    }

    private async Task<(long, float[][])> Seed(CatalogStore store, Random rng, string name, int modelId, double lonOffset,
        DateTimeOffset acquired, int side, float[][]? copyFrom)
    {
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/{name}.tif", "sha-" + name, 1), modelId, TimeSpan.FromMinutes(5)))!;
        var utm = new GeometryFactory(new PrecisionModel(), 32631);
        var tiles = new List<TileRecord>();
        var vectors = new float[side * side][];
        for (var r = 0; r < side; r++)
            for (var c = 0; c < side; c++)
            {
                var i = r * side + c;
                vectors[i] = copyFrom != null && r == c ? copyFrom[i]          // same vector under the other model
                    : i % 6 == 5 ? vectors[i - 1]                               // a duplicate: equal distances
                    : Noisy(Centres[rng.Next(Centres.Length)], rng, 0.5f);
                double x = lonOffset + c * 0.01, y = r * 0.01;
                tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(x, y, x + 0.01, y + 0.01),
                    SearchTests.Box(c, r, c + 1, r + 1, utm), 0, $"{name} {r},{c}", vectors[i]));
            }
        await store.CompleteSceneAsync(claim, new SceneMetadata(side * 224, side * 224, 3, null, 32631, null, acquired), tiles, modelId, 0);
        return (claim.SceneId, vectors);
    }

    internal static float[] RandomVector(Random rng) => Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    internal static float[] Noisy(float[] centre, Random rng, float noise) =>
        centre.Select(v => v + noise * (float)(rng.NextDouble() * 2 - 1)).ToArray();

    public Task DisposeAsync() => Db.DisposeAsync();
}

/// <summary>
/// Migration 0013 answers the index path of rscapret_search and rscapret_search_by_tile in one statement, and 0016
/// takes its candidates from the per-model halfvec graphs and ranks them by the full-precision distance; these tests
/// hold them to the rows, order, messages and settings of the two-query functions of 0005/0006. Those order by the
/// full-precision distance, for which there is no graph since 0016, so they now rank every row: the comparison is
/// with the exact answer, the rows tied at the k-th distance excepted (either of them may come back).
/// </summary>
public class SingleStatementSearchTests(SingleStatementSearchFixture fx) : IClassFixture<SingleStatementSearchFixture>
{
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    private const string SearchArgs = "query => $1, k => $2, area => $3, near => $4, radius_m => $5, " +
                                      "acquired_after => $6, acquired_before => $7, model => $8, scene => $9, exact => $10";
    private const string ByTileArgs = "tile => $1, k => $2, area => $3, near => $4, radius_m => $5, " +
                                      "acquired_after => $6, acquired_before => $7, scene => $8, exact => $9";

    /// <summary>Every returned row as PostgreSQL's text of the whole record: all 13 columns, exactly, in order.</summary>
    private static async Task<List<string>> RowsAsync(NpgsqlConnection conn, string function, object first, int k, SearchFilter f) =>
        (await RowsWithDistancesAsync(conn, function, first, k, f)).Select(r => r.Text).ToList();

    private static async Task<List<(string Text, double Distance)>> RowsWithDistancesAsync(NpgsqlConnection conn, string function, object first, int k, SearchFilter f)
    {
        var byTile = function.EndsWith("_by_tile", StringComparison.Ordinal);
        await using var cmd = new NpgsqlCommand($"SELECT r::text, r.distance FROM {function}({(byTile ? ByTileArgs : SearchArgs)}) r", conn);
        cmd.Parameters.Add(new() { Value = first });
        cmd.Parameters.Add(new() { Value = k });
        cmd.Parameters.Add(new() { Value = (object?)f.Area ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)f.Near ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Geometry });
        cmd.Parameters.Add(new() { Value = (object?)f.RadiusMetres ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Double });
        cmd.Parameters.Add(new() { Value = (object?)f.AcquiredAfter?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        cmd.Parameters.Add(new() { Value = (object?)f.AcquiredBefore?.UtcDateTime ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        if (!byTile) cmd.Parameters.Add(new() { Value = (object?)f.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
        cmd.Parameters.Add(new() { Value = (object?)f.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
        cmd.Parameters.Add(new() { Value = f.Exact });
        var rows = new List<(string, double)>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) rows.Add((r.GetString(0), r.GetDouble(1)));
        return rows;
    }

    /// <summary>
    /// The same answer but for which of the rows tied at the last (k-th) distance came back: the same distances row
    /// by row, and the same rows wherever the distance is smaller than the last.
    /// </summary>
    internal static bool SameUpToLastTies(List<(string Text, double Distance)> a, List<(string Text, double Distance)> b)
    {
        if (a.Count != b.Count || !a.Select(r => r.Distance).SequenceEqual(b.Select(r => r.Distance))) return false;
        if (a.Count == 0) return true;
        var last = a[^1].Distance;
        return Enumerable.Range(0, a.Count).All(i => a[i].Distance == last || a[i].Text == b[i].Text);
    }

    private static async Task ExecAsync(NpgsqlConnection conn, string sql)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        await cmd.ExecuteNonQueryAsync();
    }

    private async Task<float[]> StoredVectorAsync(long tileId)
    {
        await using var cmd = fx.Db.DataSource.CreateCommand("SELECT embedding::real[] FROM tiles WHERE id = $1");
        cmd.Parameters.Add(new() { Value = tileId });
        return (float[])(await cmd.ExecuteScalarAsync())!;
    }

    private async Task<long> TileIdAsync(long sceneId, int row, int col)
    {
        await using var cmd = fx.Db.DataSource.CreateCommand("SELECT id FROM tiles WHERE scene_id = $1 AND grid_row = $2 AND grid_col = $3");
        cmd.Parameters.Add(new() { Value = sceneId });
        cmd.Parameters.Add(new() { Value = row });
        cmd.Parameters.Add(new() { Value = col });
        return (long)(await cmd.ExecuteScalarAsync())!;
    }

    /// <summary>Tiles of file A (lon 0..0.3) or B (lon 5..5.3) whose footprints intersect cols c0..c1, rows r0..r1.</summary>
    private static Polygon Cells(double lonOffset, int c0, int r0, int c1, int r1) =>
        SearchTests.Box(lonOffset + c0 * 0.01 + 0.0005, r0 * 0.01 + 0.0005, lonOffset + (c1 + 1) * 0.01 - 0.0005, (r1 + 1) * 0.01 - 0.0005);

    /// <summary>The filters of the comparison: each alone, some together, exact, and some that match fewer than k rows.</summary>
    private (string Name, SearchFilter Filter)[] Filters()
    {
        var mid = new DateTimeOffset(2020, 6, 1, 0, 0, 0, TimeSpan.Zero);
        var sq = Cells(0.0, 5, 5, 14, 14);                             // 10 x 10 tiles of file A, both models
        var sq3857 = new GeometryFactory(new PrecisionModel(), 3857).CreatePolygon(
            [new(5566, 5566), new(16697, 5566), new(16697, 16697), new(5566, 16697), new(5566, 5566)]);
        var sq0 = new GeometryFactory(new PrecisionModel(), 0).CreatePolygon(sq.Coordinates);
        return
        [
            ("none", new()),
            ("exact", new(Exact: true)),
            ("bbox, all of file A", new(Area: SearchTests.Box(-0.5, -0.5, 0.5, 0.5))),
            ("bbox 10x10", new(Area: sq)),
            ("bbox 10x10, SRID 0", new(Area: sq0)),
            ("bbox in EPSG:3857", new(Area: sq3857)),
            ("bbox 2x2 (8 tiles)", new(Area: Cells(5.0, 20, 20, 21, 21))),
            ("near 3 km", new(Near: Wgs84.CreatePoint(new Coordinate(0.155, 0.155)), RadiusMetres: 3000)),
            ("after", new(AcquiredAfter: mid)),
            ("before", new(AcquiredBefore: mid)),
            ("after and before", new(AcquiredAfter: fx.TimeA, AcquiredBefore: fx.TimeA.AddDays(1))),
            ("model B", new(ModelId: fx.ModelB)),
            ("scene A1", new(SceneId: fx.SceneA1)),
            ("scene B2 + bbox 3x3", new(Area: Cells(5.0, 3, 3, 5, 5), SceneId: fx.SceneB2)),
            ("failed scene", new(SceneId: fx.FailedScene)),
            ("model A + bbox + after, exact", new(Area: SearchTests.Box(-1, -1, 6, 1), AcquiredAfter: mid, ModelId: fx.ModelA, Exact: true)),
            ("model B + bbox 10x10 + before", new(Area: sq, AcquiredBefore: mid, ModelId: fx.ModelB)),
        ];
    }

    [Fact]
    public async Task SingleStatementFunctionsReturnTheRowsOfTheTwoQueryOnes()
    {
        // Query vectors: stored ones (distance 0 and duplicates: ties), near the clusters, and uniform noise.
        var rng = new Random(23);
        var duplicated = await TileIdAsync(fx.SceneA1, 0, 5); // 0,5 = index 5, a copy of 0,4
        var shared = await TileIdAsync(fx.SceneA2, 7, 7);    // the same vector as scene A1's 7,7 (other model)
        var vectors = new List<(string, float[])>
        {
            ("stored, duplicated", await StoredVectorAsync(duplicated)),
            ("stored, shared by both models", await StoredVectorAsync(shared)),
            ("near a cluster", SingleStatementSearchFixture.Noisy(fx.Centres[3], rng, 0.3f)),
            ("near another cluster", SingleStatementSearchFixture.Noisy(fx.Centres[8], rng, 0.6f)),
            ("uniform", SingleStatementSearchFixture.RandomVector(rng)),
        };
        var tiles = new List<(string, long)>
        {
            ("tile with a duplicate", duplicated),
            ("tile shared by both models", shared),
            ("tile of file B", await TileIdAsync(fx.SceneB1, 12, 17)),
            ("tile of file B, model B", await TileIdAsync(fx.SceneB2, 21, 20)),
        };
        int[] ks = [1, 10, 60];

        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        var mismatches = new List<string>();
        int compared = 0, full = 0, short_ = 0, ties = 0;
        async Task Compare(string setting, string function, string what, object first, int k, string filterName, SearchFilter f)
        {
            var old = await RowsWithDistancesAsync(conn, "old_" + function, first, k, f);
            var now = await RowsWithDistancesAsync(conn, function, first, k, f);
            compared++;
            if (now.Count == k) full++; else short_++;
            if (old.SequenceEqual(now)) return;
            if (SameUpToLastTies(old, now)) { ties++; return; }
            var at = Enumerable.Range(0, Math.Max(old.Count, now.Count)).First(i => i >= old.Count || i >= now.Count || old[i] != now[i]);
            mismatches.Add($"{function} [{setting}] {what}, k={k}, {filterName}: {old.Count} rows before, {now.Count} now; " +
                           $"row {at}: before {(at < old.Count ? old[at] : "-")} / now {(at < now.Count ? now[at] : "-")}");
        }
        async Task CompareAll(string setting, bool everyQuery)
        {
            foreach (var (what, v) in everyQuery ? vectors : vectors.Take(2).ToList())
                foreach (var k in ks)
                    foreach (var (name, f) in Filters())
                        await Compare(setting, "rscapret_search", what, new Vector(v), k, name, f);
            foreach (var (what, t) in everyQuery ? tiles : tiles.Take(2).ToList())
                foreach (var k in ks)
                    foreach (var (name, f) in Filters())
                        await Compare(setting, "rscapret_search_by_tile", what, t, k, name, f);
        }

        await CompareAll("defaults", everyQuery: true);
        // A smaller candidate list through the rscapret.ef_search setting.
        await ExecAsync(conn, "SET rscapret.ef_search = 16");
        await CompareAll("rscapret.ef_search 16", everyQuery: false);
        await ExecAsync(conn, "RESET rscapret.ef_search");
        // Index scans that end after one pass of the candidate list: filtered searches fall back to the exact one.
        await ExecAsync(conn, "SET hnsw.max_scan_tuples = 1");
        await CompareAll("hnsw.max_scan_tuples 1", everyQuery: false);
        await ExecAsync(conn, "RESET hnsw.max_scan_tuples");

        Assert.True(mismatches.Count == 0, $"{mismatches.Count} of {compared} searches differ from the two-query functions:\n" + string.Join("\n", mismatches.Take(10)));
        // Both kinds of answer were compared: k rows, and fewer (filters that match fewer than k, the failed scene);
        // the duplicated vectors make ties at the k-th distance, but only in a few of the searches.
        Assert.True(full > 0 && short_ > 0, $"{full} searches returned k rows and {short_} fewer");
        Assert.True(ties < compared / 10, $"{ties} of {compared} searches differ in the rows tied at the k-th distance");
    }

    [Fact]
    public async Task FilterMatchingFewerThanKRowsReturnsAllOfThem()
    {
        var store = new CatalogStore(fx.Db.DataSource);
        // 3 x 3 tiles of file A under model A: 9 rows for k = 20.
        var box = Cells(0.0, 10, 10, 12, 12);
        var filter = new SearchFilter(Area: box, ModelId: fx.ModelA);
        var query = SingleStatementSearchFixture.Noisy(fx.Centres[1], new Random(5), 0.4f);
        var expected = new List<long>();
        await using (var cmd = fx.Db.DataSource.CreateCommand("SELECT tile_id FROM tile_catalog WHERE model_id = $1 AND ST_Intersects(footprint, $2) ORDER BY tile_id"))
        {
            cmd.Parameters.Add(new() { Value = fx.ModelA });
            cmd.Parameters.Add(new() { Value = box, NpgsqlDbType = NpgsqlDbType.Geometry });
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) expected.Add(r.GetInt64(0));
        }
        Assert.Equal(9, expected.Count);

        var hits = await store.SearchAsync(query, 20, filter);
        Assert.Equal(expected, hits.Select(h => h.TileId).Order());
        Assert.Equal(hits.OrderBy(h => h.Distance).ThenBy(h => h.TileId), hits);
        Assert.Equal((await store.SearchAsync(query, 20, filter with { Exact = true })).Select(h => h.TileId), hits.Select(h => h.TileId));
        // k equal to the matching rows, and one fewer: the index path answers with k. (Of rows tied at the k-th
        // distance, the index scan's order picks which come back, as before 0013; hence distances for k = 8.)
        Assert.Equal(hits.Select(h => h.TileId), (await store.SearchAsync(query, 9, filter)).Select(h => h.TileId));
        var eight = await store.SearchAsync(query, 8, filter);
        Assert.Equal(hits.Take(8).Select(h => h.Distance), eight.Select(h => h.Distance));
        Assert.All(eight, h => Assert.Contains(h.TileId, expected));

        // Image to image from a tile inside the box: the 8 others; from a tile of file B: all 9.
        var inside = expected[4];
        var fromInside = (await store.SearchByTileAsync(inside, 20, new SearchFilter(Area: box)))!;
        Assert.Equal(expected.Where(id => id != inside), fromInside.Select(h => h.TileId).Order());
        Assert.Equal(fromInside.OrderBy(h => h.Distance).ThenBy(h => h.TileId), fromInside);
        var fromB = (await store.SearchByTileAsync(await TileIdAsync(fx.SceneB1, 1, 1), 20, new SearchFilter(Area: box)))!;
        Assert.Equal(expected, fromB.Select(h => h.TileId).Order());

        // Nothing matches (the failed scene's tiles are not searchable): no rows, on both paths.
        Assert.Empty(await store.SearchAsync(query, 10, new SearchFilter(SceneId: fx.FailedScene)));
        Assert.Empty(await store.SearchAsync(query, 10, new SearchFilter(SceneId: fx.FailedScene, Exact: true)));
        Assert.Empty((await store.SearchByTileAsync(inside, 10, new SearchFilter(SceneId: fx.FailedScene)))!);
    }

    [Fact]
    public async Task IndexScanThatStopsShortIsAnsweredByTheExactSearchAlone()
    {
        // Index order forced (sorts off) and iterative scans cut short (max_scan_tuples 1): selective filters then
        // see the index scan end before k rows. Which searches do is found by running the function's own index
        // query with its settings; for those the function must answer with the exact k rows, neither the scan's
        // few rows nor those rows followed by the exact ones.
        (string Name, SearchFilter Filter)[] filters =
        [
            ("scene A1, rows 0-3", new(Area: Cells(0.0, 0, 0, 29, 3), SceneId: fx.SceneA1)),
            ("scene B2, rows 0-1", new(Area: Cells(5.0, 0, 0, 29, 1), SceneId: fx.SceneB2)),
            ("model B, 6 x 6 of file B", new(Area: Cells(5.0, 10, 10, 15, 15), ModelId: fx.ModelB)),
        ];
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        await using var plain = await fx.Db.DataSource.OpenConnectionAsync(); // default settings, for the exact answers
        await ExecAsync(conn, "SET hnsw.max_scan_tuples = 1; SET enable_sort = off");
        var shortScans = 0;
        for (var q = 0; q < 2; q++)
        {
            var query = new Vector(SingleStatementSearchFixture.Noisy(fx.Centres[q], new Random(q), 0.4f));
            foreach (var (name, filter) in filters)
                foreach (var k in new[] { 10, 30 })
                {
                    long scanned;
                    await using (var tx = await conn.BeginTransactionAsync())
                    {
                        await ExecAsync(conn, $"SET LOCAL hnsw.iterative_scan = strict_order; SET LOCAL hnsw.ef_search = {Math.Max(40, 2 * k)}");
                        await using var cmd = new NpgsqlCommand("""
                            SELECT count(*) FROM (SELECT c.tile_id FROM tile_catalog c
                                                   WHERE (ST_Intersects(c.footprint, $1)) AND ($2::int IS NULL OR c.model_id = $2)
                                                     AND ($3::bigint IS NULL OR c.scene_id = $3)
                                                   ORDER BY c.embedding::halfvec(256) <=> $4::halfvec(256) LIMIT 2 * $5) x
                            """, conn, tx);
                        cmd.Parameters.Add(new() { Value = filter.Area, NpgsqlDbType = NpgsqlDbType.Geometry });
                        cmd.Parameters.Add(new() { Value = (object?)filter.ModelId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Integer });
                        cmd.Parameters.Add(new() { Value = (object?)filter.SceneId ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Bigint });
                        cmd.Parameters.Add(new() { Value = query });
                        cmd.Parameters.Add(new() { Value = k });
                        scanned = (long)(await cmd.ExecuteScalarAsync())!;
                    }
                    var exact = await RowsAsync(plain, "rscapret_search", query, k, filter with { Exact = true });
                    Assert.Equal(k, exact.Count); // every filter matches more than k rows
                    if (scanned >= k) continue;
                    shortScans++;
                    Assert.True(exact.SequenceEqual(await RowsAsync(conn, "rscapret_search", query, k, filter)),
                        $"query {q}, {name}, k={k}: the index scan ended with {scanned} rows, and the answer is not the exact search's");
                }
        }
        await ExecAsync(conn, "RESET hnsw.max_scan_tuples; RESET enable_sort");
        Assert.True(shortScans > 0, "no index scan ended short of k: the fallback was not exercised");
    }

    [Fact]
    public async Task IndexPathReadsTheTilesOnceThroughTheHnswIndex()
    {
        // Scans of the tiles partitions and their indexes counted by the statistics of this transaction: the single
        // statement reads each model's partition it searches once, through that partition's graph (one graph per
        // model: two without a model filter, one with), and nothing else.
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        await using var tx = await conn.BeginTransactionAsync();
        async Task<(long Hnsw, long Other)> Scans()
        {
            await using var cmd = new NpgsqlCommand("""
                WITH graphs AS (SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = 'tiles_embedding_hnsw'::regclass),
                     parts AS (SELECT relid AS oid FROM pg_partition_tree('tiles') WHERE isleaf)
                SELECT (SELECT sum(pg_stat_get_xact_numscans(oid)) FROM graphs),
                       (SELECT sum(pg_stat_get_xact_numscans(oid)) FROM parts)
                       + (SELECT sum(pg_stat_get_xact_numscans(i.indexrelid)) FROM pg_index i JOIN parts p ON p.oid = i.indrelid
                           WHERE i.indexrelid NOT IN (SELECT oid FROM graphs))
                """, conn, tx);
            await using var r = await cmd.ExecuteReaderAsync();
            await r.ReadAsync();
            return ((long)r.GetDecimal(0), (long)r.GetDecimal(1));
        }
        async Task<(long Hnsw, long Other, int Rows)> Measure(string function, object first, SearchFilter f)
        {
            var before = await Scans();
            var rows = await RowsAsync(conn, function, first, 10, f);
            var after = await Scans();
            return (after.Hnsw - before.Hnsw, after.Other - before.Other, rows.Count);
        }
        var query = new Vector(SingleStatementSearchFixture.Noisy(fx.Centres[2], new Random(3), 0.4f));
        var tile = await TileIdAsync(fx.SceneB1, 4, 9);

        Assert.Equal((2L, 0L, 10), await Measure("rscapret_search", query, new SearchFilter()));
        Assert.Equal((1L, 0L, 10), await Measure("rscapret_search", query, new SearchFilter(ModelId: fx.ModelB)));
        // By tile: one more read of tiles, the tile's own vector by id (each partition's primary key is probed).
        var byTile = await Measure("rscapret_search_by_tile", tile, new SearchFilter());
        Assert.True(byTile is (1L, >= 1L, 10), $"rscapret_search_by_tile: {byTile}");
        // The count tells the shapes apart: the two-query functions order by the full-precision distance, which no
        // graph serves since 0016, and read every row.
        var old = await Measure("old_rscapret_search", query, new SearchFilter());
        Assert.True(old.Hnsw == 0 && old.Other >= 2, $"old_rscapret_search: {old.Hnsw} HNSW scan(s), {old.Other} other scan(s) of tiles");
    }

    [Fact]
    public async Task ArgumentErrorsAndSettingsAreThoseOfTheTwoQueryFunctions()
    {
        const string zero = "array_fill(0, ARRAY[256])::vector";
        var some = await TileIdAsync(fx.SceneA1, 2, 3);
        var failed = await TileIdAsync(fx.FailedScene, 2, 3);
        string[] calls =
        [
            $"{{0}}({zero}, 0)", $"{{0}}({zero}, 1001)", $"{{0}}({zero}, NULL)", "{0}(NULL, 10)",
            $"{{0}}({zero}, 10, near => ST_MakePoint(0, 0))", $"{{0}}({zero}, 10, radius_m => 100)",
            $"{{0}}({zero}, 10, near => ST_MakePoint(0, 0), radius_m => 0)",
            $"{{0}}({zero}, 10, near => ST_MakePoint(0, 0), radius_m => 30000000)",
            $"{{0}}({zero}, 10, exact => true, radius_m => 100)",
            $"{{0}}_by_tile(999999999, 10)", "{0}_by_tile(NULL, 10)", $"{{0}}_by_tile({failed}, 10)",
            $"{{0}}_by_tile({some}, 1000)", $"{{0}}_by_tile({some}, -1)", $"{{0}}_by_tile({some}, NULL)",
            $"{{0}}_by_tile(999999999, 1000)", $"{{0}}_by_tile({some}, 10, near => ST_MakePoint(0, 0))",
            $"{{0}}_by_tile({some}, 10, near => ST_MakePoint(0, 0), radius_m => -1)",
        ];
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        async Task<string> Error(string call)
        {
            try
            {
                await ExecAsync(conn, "SELECT * FROM " + call);
                return "no error";
            }
            catch (PostgresException e) { return $"{e.SqlState}: {e.MessageText}"; }
        }
        foreach (var call in calls)
        {
            var now = await Error(string.Format(call, "rscapret_search"));
            Assert.Equal(await Error(string.Format(call, "old_rscapret_search")), now);
            Assert.NotEqual("no error", now);
        }
        Assert.Equal("P0001: rscapret_search: k must be between 1 and 1000, got 1001", await Error(string.Format(calls[12], "rscapret_search")));
        Assert.Equal($"{PostgresErrorCodes.NoDataFound}: no tile 999999999 in a completed scene", await Error(string.Format(calls[9], "rscapret_search")));
        // k = 0 by tile asked rscapret_search for 1 row and kept none: still no rows, no error.
        Assert.Empty(await RowsAsync(conn, "rscapret_search_by_tile", some, 0, new SearchFilter()));

        // The index settings hold only during the search: a transaction's own values are there again afterwards.
        foreach (var function in new[] { "rscapret_search", "old_rscapret_search" })
        {
            await using var tx = await conn.BeginTransactionAsync();
            await ExecAsync(conn, "SET LOCAL hnsw.ef_search = 77; SET LOCAL hnsw.iterative_scan = relaxed_order; SET LOCAL plan_cache_mode = force_custom_plan");
            // Without a model filter, with one only (0017's statement, which plans generically), and by tile.
            await ExecAsync(conn, $"SELECT count(*) FROM {function}({zero}, 5); SELECT count(*) FROM {function}({zero}, 5, model => {fx.ModelB}); " +
                                  $"SELECT count(*) FROM {function}_by_tile({some}, 5)");
            await using var cmd = new NpgsqlCommand(
                "SELECT current_setting('hnsw.ef_search') || ' ' || current_setting('hnsw.iterative_scan') || ' ' || current_setting('plan_cache_mode')", conn, tx);
            Assert.Equal("77 relaxed_order force_custom_plan", (string)(await cmd.ExecuteScalarAsync())!);
        }
    }
}
