using NetTopologySuite.Geometries;
using Npgsql;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>A few thousand random tiles on a lon/lat grid; search filters and index-vs-exact agreement.</summary>
public sealed class SearchFixture : IAsyncLifetime
{
    public readonly TestDatabase Db = new();
    public int ModelId;
    public long OldSceneId, NewSceneId;
    public const int GridSide = 50; // 2 scenes x 50 x 50 = 5,000 tiles

    public async Task InitializeAsync()
    {
        await Db.InitializeAsync();
        var store = new CatalogStore(Db.DataSource);
        ModelId = await store.RegisterModelAsync(new ModelIdentity("search-test", "1", "llm", "vision", "h"));
        var rng = new Random(7);
        OldSceneId = await Seed(store, rng, "old", 0.0, new DateTimeOffset(2018, 7, 16, 0, 0, 0, TimeSpan.Zero));
        NewSceneId = await Seed(store, rng, "new", 10.0, new DateTimeOffset(2020, 8, 31, 0, 0, 0, TimeSpan.Zero));
    }

    private async Task<long> Seed(CatalogStore store, Random rng, string name, double lonOffset, DateTimeOffset acquired)
    {
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/{name}.tif", "sha-" + name, 1), ModelId, TimeSpan.FromMinutes(5)))!;
        var utm = new GeometryFactory(new PrecisionModel(), 32614);
        var tiles = new List<TileRecord>();
        for (var r = 0; r < GridSide; r++)
            for (var c = 0; c < GridSide; c++)
            {
                var v = new float[256];
                for (var i = 0; i < 256; i++) v[i] = (float)(rng.NextDouble() * 2 - 1);
                double x = lonOffset + c * 0.01, y = r * 0.01;
                tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(x, y, x + 0.01, y + 0.01),
                    SearchTests.Box(c, r, c + 1, r + 1, utm), 0, $"{name} {r},{c}", v));
            }
        await store.CompleteSceneAsync(claim, new SceneMetadata(GridSide * 224, GridSide * 224, 3, null, 32614, null, acquired), tiles, ModelId, 0);
        return claim.SceneId;
    }

    public Task DisposeAsync() => Db.DisposeAsync();
}

public class SearchTests(SearchFixture fx) : IClassFixture<SearchFixture>
{
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    internal static Polygon Box(double minX, double minY, double maxX, double maxY, GeometryFactory? f = null) =>
        (f ?? Wgs84).CreatePolygon([new(minX, minY), new(maxX, minY), new(maxX, maxY), new(minX, maxY), new(minX, minY)]);

    private static float[] RandomQuery(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private CatalogStore Store => new(fx.Db.DataSource);

    [Fact]
    public async Task BboxResultsIntersectTheBoxAndAreOrderedByDistance()
    {
        var box = Box(0.105, 0.105, 0.205, 0.155);
        var hits = await Store.SearchAsync(RandomQuery(1), 20, new SearchFilter(Area: box));
        Assert.Equal(20, hits.Count);
        Assert.All(hits, h => Assert.True(h.Footprint!.Intersects(box), $"tile {h.TileId} outside the bbox"));
        Assert.Equal(hits.Select(h => h.Distance).Order(), hits.Select(h => h.Distance));
    }

    [Fact]
    public async Task HighlySelectiveFilterStillReturnsKRows()
    {
        // 4 x 4 = 16 tiles (of 5,000) intersect; an ANN scan alone would end with few or none.
        var box = Box(10.2005, 0.3005, 10.2395, 0.3395);
        var hits = await Store.SearchAsync(RandomQuery(2), 16, new SearchFilter(Area: box));
        Assert.Equal(16, hits.Count);
        Assert.All(hits, h => Assert.Equal(fx.NewSceneId, h.SceneId));
        var exact = await Store.SearchAsync(RandomQuery(2), 16, new SearchFilter(Area: box, Exact: true));
        Assert.Equal(exact.Select(h => h.TileId), hits.Select(h => h.TileId));
    }

    [Fact]
    public async Task IndexAndExactModesAgreeOnRecallAtTen()
    {
        double overlap = 0;
        const int queries = 10;
        for (var q = 0; q < queries; q++)
        {
            var query = RandomQuery(100 + q);
            var approx = await Store.SearchAsync(query, 10);
            var exact = await Store.SearchAsync(query, 10, new SearchFilter(Exact: true));
            Assert.Equal(10, exact.Count);
            Assert.Equal(exact.Select(h => h.Distance).Order(), exact.Select(h => h.Distance));
            overlap += approx.Select(h => h.TileId).Intersect(exact.Select(h => h.TileId)).Count() / 10.0;
        }
        Assert.True(overlap / queries >= 0.9, $"recall@10 of the HNSW index against exact search was {overlap / queries:F2}");
    }

    [Fact]
    public async Task TimeAndNearFiltersSelectTheRightScenesAndPlaces()
    {
        var after = await Store.SearchAsync(RandomQuery(3), 5, new SearchFilter(AcquiredAfter: new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        Assert.All(after, h => Assert.Equal(fx.NewSceneId, h.SceneId));
        var before = await Store.SearchAsync(RandomQuery(3), 5, new SearchFilter(AcquiredBefore: new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero)));
        Assert.All(before, h => Assert.Equal(fx.OldSceneId, h.SceneId));

        var centre = Wgs84.CreatePoint(new Coordinate(0.255, 0.255));
        var near = await Store.SearchAsync(RandomQuery(4), 50, new SearchFilter(Near: centre, RadiusMetres: 2000));
        Assert.NotEmpty(near);
        // ~0.018° at the equator is 2 km: every hit's footprint lies within that of the point.
        Assert.All(near, h => Assert.True(h.Footprint!.Distance(centre) <= 0.0181, $"tile {h.TileId} is {h.Footprint!.Distance(centre):F4}° away"));
    }

    [Fact]
    public async Task ImageToImageByTileRanksOtherTilesByTheirDistanceToThatTile()
    {
        var some = (await Store.SearchAsync(RandomQuery(5), 1))[0];
        var exact = await Store.SearchByTileAsync(some.TileId, 10, new SearchFilter(Exact: true));
        Assert.NotNull(exact);
        Assert.Equal(10, exact.Count);
        Assert.DoesNotContain(exact, h => h.TileId == some.TileId);     // the query tile itself is left out
        Assert.Equal(exact.Select(h => h.Distance).Order(), exact.Select(h => h.Distance));

        // The same ranking as a vector search with the tile's stored vector.
        float[] vector;
        await using (var cmd = fx.Db.DataSource.CreateCommand("SELECT embedding::real[] FROM tiles WHERE id = $1"))
        {
            cmd.Parameters.Add(new() { Value = some.TileId });
            vector = (float[])(await cmd.ExecuteScalarAsync())!;
        }
        var byVector = await Store.SearchAsync(vector, 11, new SearchFilter(Exact: true));
        Assert.Equal(some.TileId, byVector[0].TileId);
        Assert.Equal(byVector.Skip(1).Select(h => h.TileId), exact.Select(h => h.TileId));

        // Filters apply as in text search, and the index path returns k rows too.
        var box = Box(10.2005, 0.3005, 10.2395, 0.3395);
        var filtered = await Store.SearchByTileAsync(some.TileId, 5, new SearchFilter(Area: box));
        Assert.Equal(5, filtered!.Count);
        Assert.All(filtered, h => Assert.True(h.Footprint!.Intersects(box)));
        Assert.Null(await Store.SearchByTileAsync(999_999_999, 5));
    }

    [Fact]
    public async Task SqlFunctionRejectsBadArgumentsWithAMessage()
    {
        var ex = await Assert.ThrowsAsync<PostgresException>(async () =>
        {
            await using var cmd = fx.Db.DataSource.CreateCommand("SELECT * FROM rscapret_search(array_fill(0, ARRAY[256])::vector, 0)");
            await cmd.ExecuteNonQueryAsync();
        });
        Assert.Contains("k must be between 1 and 1000", ex.MessageText);
        await Assert.ThrowsAsync<ArgumentException>(() => Store.SearchAsync(new float[3], 5));
    }
}
