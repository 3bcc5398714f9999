using NetTopologySuite.Geometries;
using Npgsql;
using Pgvector;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// 3,200 tiles whose vectors lie on an 8-d subspace of the 256-d space (as real embeddings do, roughly), so that the
/// HNSW index finds the true neighbours and the index path can be compared with exact search id for id. The search
/// functions of migration 0006/0005 are installed beside the current ones as a reference.
/// </summary>
public sealed class SingleStatementSearchFixture : IAsyncLifetime
{
    public readonly TestDatabase Db = new();
    public const int GridSide = 40;
    private readonly float[,] _basis = new float[8, 256];

    public async Task InitializeAsync()
    {
        await Db.InitializeAsync();
        var rng = new Random(17);
        for (var j = 0; j < 8; j++) for (var i = 0; i < 256; i++) _basis[j, i] = (float)(rng.NextDouble() * 2 - 1);
        var store = new CatalogStore(Db.DataSource);
        var model = await store.RegisterModelAsync(new ModelIdentity("single-stmt", "1", "llm", "vision", "h"));
        await Seed(store, model, rng, "a", 0.0, new DateTimeOffset(2018, 7, 16, 0, 0, 0, TimeSpan.Zero));
        await Seed(store, model, rng, "b", 10.0, new DateTimeOffset(2020, 8, 31, 0, 0, 0, TimeSpan.Zero));

        // The previous definitions, renamed, read from the migrations this assembly carries.
        var asm = typeof(CatalogStore).Assembly;
        string Sql(string name)
        {
            using var s = asm.GetManifestResourceStream("migrations/" + name)!;
            return new StreamReader(s).ReadToEnd();
        }
        var search0006 = Sql("0006_search_ef_search.sql").Replace("CREATE OR REPLACE FUNCTION rscapret_search(", "CREATE FUNCTION search_0006(");
        var byTile0005 = Sql("0005_search_by_tile.sql").Replace("CREATE FUNCTION rscapret_search_by_tile(", "CREATE FUNCTION search_by_tile_0005(")
            .Replace("FROM rscapret_search(", "FROM search_0006(").Replace("COMMENT ON FUNCTION rscapret_search_by_tile", "COMMENT ON FUNCTION search_by_tile_0005");
        await using var cmd = Db.DataSource.CreateCommand(search0006 + ";\n" + byTile0005);
        await cmd.ExecuteNonQueryAsync();
    }

    public float[] Vector(Random rng)
    {
        var v = new float[256];
        for (var j = 0; j < 8; j++)
        {
            var w = (float)(rng.NextDouble() * 2 - 1);
            for (var i = 0; i < 256; i++) v[i] += w * _basis[j, i];
        }
        return v;
    }

    private async Task Seed(CatalogStore store, int model, Random rng, string name, double lonOffset, DateTimeOffset acquired)
    {
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/{name}.tif", "sha-" + name, 1), model, TimeSpan.FromMinutes(5)))!;
        var utm = new GeometryFactory(new PrecisionModel(), 32614);
        var tiles = new List<TileRecord>();
        for (var r = 0; r < GridSide; r++)
        for (var c = 0; c < GridSide; c++)
        {
            double x = lonOffset + c * 0.01, y = r * 0.01;
            tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(x, y, x + 0.01, y + 0.01),
                SearchTests.Box(c, r, c + 1, r + 1, utm), 0, $"{name} {r},{c}", Vector(rng)));
        }
        await store.CompleteSceneAsync(claim, new SceneMetadata(GridSide * 224, GridSide * 224, 3, null, 32614, null, acquired), tiles, model, 0);
    }

    public Task DisposeAsync() => Db.DisposeAsync();
}

public class SingleStatementSearchTests(SingleStatementSearchFixture fx) : IClassFixture<SingleStatementSearchFixture>
{
    // Filters as SQL fragments: (arguments to the functions, the same condition for the exact reference).
    private static readonly (string Name, string Args, string Where)[] Filters =
    [
        ("plain", "", "true"),
        ("bbox", ", area => ST_MakeEnvelope(0.105, 0.105, 0.255, 0.205, 4326)", "ST_Intersects(t.footprint, ST_MakeEnvelope(0.105, 0.105, 0.255, 0.205, 4326))"),
        ("after", ", acquired_after => '2019-01-01Z'", "s.acquired_at >= '2019-01-01Z'"),
        ("before", ", acquired_before => '2019-01-01Z'", "s.acquired_at < '2019-01-01Z'"),
        ("bbox+time", ", area => ST_MakeEnvelope(10.0, 0.0, 10.2, 0.2, 4326), acquired_after => '2019-01-01Z'",
            "ST_Intersects(t.footprint, ST_MakeEnvelope(10.0, 0.0, 10.2, 0.2, 4326)) AND s.acquired_at >= '2019-01-01Z'"),
    ];

    private static async Task<List<long>> Ids(NpgsqlConnection conn, string sql, object p)
    {
        await using var cmd = new NpgsqlCommand(sql, conn);
        cmd.Parameters.Add(new() { Value = p });
        var ids = new List<long>();
        await using var r = await cmd.ExecuteReaderAsync();
        while (await r.ReadAsync()) ids.Add(r.GetInt64(0));
        return ids;
    }

    private static string Exact(string where, int k, string extra = "") =>
        $"""
        SELECT t.id FROM tiles t JOIN scenes s ON s.id = t.scene_id
         WHERE s.status = 'done' AND {where} {extra}
         ORDER BY (t.embedding <=> $1) + 0, t.id LIMIT {k}
        """;

    [Fact]
    public async Task SearchEqualsExactAndThePreviousDefinitionForPlainBboxAndTimeQueries()
    {
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        var rng = new Random(3);
        foreach (var (name, args, where) in Filters)
        for (var q = 0; q < 5; q++)
        {
            var query = new Vector(fx.Vector(rng));
            var now = await Ids(conn, $"SELECT tile_id FROM rscapret_search($1, 10{args})", query);
            var old = await Ids(conn, $"SELECT tile_id FROM search_0006($1, 10{args})", query);
            var exact = await Ids(conn, Exact(where, 10), query);
            Assert.True(exact.Count == 10, $"{name}: the reference found {exact.Count} rows");
            Assert.True(exact.SequenceEqual(now), $"{name} #{q}: new [{string.Join(",", now)}] vs exact [{string.Join(",", exact)}]");
            Assert.True(old.SequenceEqual(now), $"{name} #{q}: new [{string.Join(",", now)}] vs 0006 [{string.Join(",", old)}]");
        }
    }

    [Fact]
    public async Task SearchByTileEqualsExactAndThePreviousDefinition()
    {
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        var tiles = await Ids(conn, "SELECT id FROM tiles ORDER BY id OFFSET $1 LIMIT 4", 100);
        foreach (var (name, args, where) in Filters)
        foreach (var tile in tiles)
        {
            var now = await Ids(conn, $"SELECT tile_id FROM rscapret_search_by_tile($1, 10{args})", tile);
            var old = await Ids(conn, $"SELECT tile_id FROM search_by_tile_0005($1, 10{args})", tile);
            var exact = await Ids(conn, Exact(where, 10, "AND t.id <> $1")
                .Replace("(t.embedding <=> $1)", "(t.embedding <=> (SELECT embedding FROM tiles WHERE id = $1))"), tile);
            Assert.Equal(10, exact.Count);
            Assert.DoesNotContain(tile, now);
            Assert.True(exact.SequenceEqual(now), $"{name} tile {tile}: new [{string.Join(",", now)}] vs exact [{string.Join(",", exact)}]");
            Assert.True(old.SequenceEqual(now), $"{name} tile {tile}: new [{string.Join(",", now)}] vs 0005 [{string.Join(",", old)}]");
        }
    }

    [Fact]
    public async Task ExactFallbackAnswersWhenTheIndexScanEndsShort()
    {
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        // A short scan budget (not set by the function) and 16 matching tiles of 3,200: the index scan alone
        // ends with fewer than k rows, so the rows must come from the exact branch. At this size the planner
        // would rather sort a GiST bitmap scan; without sorts the ranking has to come from the HNSW index.
        await using (var set = new NpgsqlCommand("SET hnsw.max_scan_tuples = 50; SET enable_sort = off; SET jit = off", conn)) await set.ExecuteNonQueryAsync();
        const string box = "ST_MakeEnvelope(10.2005, 0.3005, 10.2395, 0.3395, 4326)";
        var query = new Vector(fx.Vector(new Random(5)));
        await using (var tx = await conn.BeginTransactionAsync())
        {
            await using (var set = new NpgsqlCommand("SET LOCAL hnsw.iterative_scan = relaxed_order", conn, tx)) await set.ExecuteNonQueryAsync();
            var annOnly = await Ids(conn, $"SELECT t.id FROM tiles t WHERE ST_Intersects(t.footprint, {box}) ORDER BY t.embedding <=> $1 LIMIT 10", query);
            Assert.True(annOnly.Count < 10, $"the index scan alone returned {annOnly.Count} rows; the fallback would not run");
        }
        var now = await Ids(conn, $"SELECT tile_id FROM rscapret_search($1, 10, area => {box})", query);
        var exact = await Ids(conn, Exact($"ST_Intersects(t.footprint, {box})", 10), query);
        Assert.Equal(10, now.Count);
        Assert.Equal(exact, now);
        var tile = exact[0];
        var byTile = await Ids(conn, $"SELECT tile_id FROM rscapret_search_by_tile($1, 10, area => {box})", tile);
        var byTileExact = await Ids(conn, Exact($"ST_Intersects(t.footprint, {box}) AND t.id <> $1", 10)
            .Replace("(t.embedding <=> $1)", "(t.embedding <=> (SELECT embedding FROM tiles WHERE id = $1))"), tile);
        Assert.Equal(10, byTile.Count);
        Assert.Equal(byTileExact, byTile);
    }

    [Fact]
    public async Task UnfilteredSearchIsOneStatementOnTheHnswIndex()
    {
        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        var plans = new List<string>();
        conn.Notice += (_, e) => plans.Add(e.Notice.MessageText);
        // auto_explain reports every statement the function runs, with its plan, as a notice to this client.
        // 3,200 rows are few enough that the planner prefers a sequential scan and a sort (for the old definition
        // too); without sorts it has to take the index, as it does by cost on a large catalogue.
        await using (var set = new NpgsqlCommand(
            "SET enable_sort = off; SET jit = off; LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; SET auto_explain.log_nested_statements = on; " +
            "SET auto_explain.log_analyze = on; SET auto_explain.log_level = notice", conn)) await set.ExecuteNonQueryAsync();
        plans.Clear();
        var ids = await Ids(conn, "SELECT tile_id FROM rscapret_search($1, 10)", new Vector(fx.Vector(new Random(9))));
        Assert.Equal(10, ids.Count);
        var onTiles = plans.Where(p => p.Contains(" on tiles")).ToList();
        Assert.True(onTiles.Count == 1, $"{onTiles.Count} statements read tiles:\n{string.Join("\n---\n", plans)}");
        Assert.Contains("Index Scan using tiles_embedding_hnsw on tiles", onTiles[0]);
        // The exact fallback is in the plan but does not run.
        var ranOnTiles = onTiles[0].Split('\n').Where(l => l.Contains(" on tiles") && !l.Contains("never executed")).ToList();
        Assert.True(ranOnTiles.Count == 1, string.Join("\n", ranOnTiles));
    }
}
