using NetTopologySuite.Geometries;
using Npgsql;
using Pgvector;
using RsCapRet.Core;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>A small catalogue whose tiles carry captions of a few kinds and random vectors.</summary>
public sealed class HybridSearchFixture : IAsyncLifetime
{
    public readonly TestDatabase Db = new();
    public int ModelId;
    public const int GridSide = 16;   // 256 tiles: more than the hybrid depth of 200
    public static readonly string[] Captions =
    [
        "many white storage tanks are next to a road",
        "a dense residential area with many buildings and green trees",
        "a river flows through green farmland",
        "an airplane is parked at the airport",
        "some cars are parked in a parking lot",
        "",   // a tile without a caption scores 0 on the text side
    ];

    public async Task InitializeAsync()
    {
        await Db.InitializeAsync();
        var store = new CatalogStore(Db.DataSource);
        ModelId = await store.RegisterModelAsync(new ModelIdentity("hybrid-test", "1", "llm", "vision", "h"));
        var claim = (await store.TryClaimSceneAsync(new SceneFile("/hybrid.tif", "sha-hybrid", 1), ModelId, TimeSpan.FromMinutes(5)))!;
        var utm = new GeometryFactory(new PrecisionModel(), 32614);
        var rng = new Random(31);
        var tiles = new List<TileRecord>();
        for (var r = 0; r < GridSide; r++)
            for (var c = 0; c < GridSide; c++)
            {
                var v = Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
                var caption = Captions[(r * GridSide + c) % Captions.Length];
                tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(c * 0.01, r * 0.01, c * 0.01 + 0.01, r * 0.01 + 0.01),
                    SearchTests.Box(c, r, c + 1, r + 1, utm), 0, caption.Length == 0 ? null : caption, v));
            }
        await store.CompleteSceneAsync(claim, new SceneMetadata(GridSide * 224, GridSide * 224, 3, null, 32614, null, DateTimeOffset.UnixEpoch), tiles, ModelId, 0);
    }

    public Task DisposeAsync() => Db.DisposeAsync();
}

/// <summary>
/// Issue 31, hybrid search: rscapret_search_hybrid_page equals the reciprocal rank fusion (HybridRanking, what
/// `evaluate --retrieval hybrid` measures) of its two parts — the vector ranking's first 200 rows and the caption
/// text-match scores — and pages, weights and limits behave as documented.
/// </summary>
public class HybridSearchTests(HybridSearchFixture fx) : IClassFixture<HybridSearchFixture>
{
    private CatalogStore Store => new(fx.Db.DataSource);

    private static float[] Query(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    /// <summary>The fused ranking computed in C# from the store's vector ranking and the SQL text-match scores.</summary>
    private async Task<List<long>> FusedFromParts(float[] q, string text, double weight, bool exact)
    {
        var vector = await Store.SearchAsync(q, HybridRanking.DefaultDepth, 0, new SearchFilter(ModelId: fx.ModelId, Exact: exact));
        Assert.Equal(HybridRanking.DefaultDepth, vector.Count);
        var scores = await Store.CaptionScoresAsync([text], vector.Select(h => h.Caption ?? "").ToList());
        var order = HybridRanking.Order(vector.Select(h => h.Distance).ToList(), vector.Select((_, i) => scores[0, i]).ToList(),
            vector.Select(h => h.TileId).ToList(), weight);
        return order.Select(i => vector[i].TileId).ToList();
    }

    [Theory]
    [InlineData("storage tanks", 1.0, true)]
    [InlineData("storage tanks", 1.0, false)]
    [InlineData("green trees near the river", 0.5, true)]
    [InlineData("an airport with airplanes", 2.0, false)]
    public async Task TheSqlRankingIsTheFusionOfItsTwoParts(string text, double weight, bool exact)
    {
        for (var seed = 1; seed <= 3; seed++)
        {
            var q = Query(seed);
            var expected = await FusedFromParts(q, text, weight, exact);
            var hits = await Store.HybridSearchAsync(q, text, 50, 0, new SearchFilter(ModelId: fx.ModelId, Exact: exact), weight);
            Assert.Equal(expected.Take(50), hits.Select(h => h.TileId));
        }
    }

    [Fact]
    public async Task AMatchingCaptionRisesAndDistancesStayTheVectorSides()
    {
        var q = Query(7);
        var vector = await Store.SearchAsync(q, 10, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true));
        var hybrid = await Store.HybridSearchAsync(q, "storage tanks", 10, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true));
        Assert.True(hybrid.Count(h => h.Caption?.Contains("tanks") == true) > vector.Count(h => h.Caption?.Contains("tanks") == true),
            "the caption match should lift tiles captioned with tanks");
        var distanceOf = (await Store.SearchAsync(q, HybridRanking.DefaultDepth, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true)))
            .ToDictionary(h => h.TileId, h => h.Distance);
        Assert.All(hybrid, h => Assert.Equal(distanceOf[h.TileId], h.Distance));
    }

    [Fact]
    public async Task WeightZeroOrNoSearchableWordIsTheVectorRanking()
    {
        var q = Query(8);
        var vector = (await Store.SearchAsync(q, 20, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true))).Select(h => h.TileId);
        Assert.Equal(vector, (await Store.HybridSearchAsync(q, "storage tanks", 20, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true), 0)).Select(h => h.TileId));
        Assert.Equal(vector, (await Store.HybridSearchAsync(q, "the of and", 20, 0, new SearchFilter(ModelId: fx.ModelId, Exact: true))).Select(h => h.TileId));
    }

    [Fact]
    public async Task PagesContinueTheSameRankingUpToItsDepth()
    {
        var q = Query(9);
        var filter = new SearchFilter(ModelId: fx.ModelId, Exact: true);
        var ten = await Store.HybridSearchAsync(q, "a parking lot with cars", 10, 0, filter);
        Assert.Equal(ten.Skip(5).Select(h => h.TileId), (await Store.HybridSearchAsync(q, "a parking lot with cars", 5, 5, filter)).Select(h => h.TileId));
        var last = await Store.HybridSearchAsync(q, "a parking lot with cars", 10, 190, filter);
        Assert.Equal(10, last.Count);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.HybridSearchAsync(q, "cars", 10, 191, filter));
        await Assert.ThrowsAsync<ArgumentException>(() => Store.HybridSearchAsync(q, "cars", 10, 0, filter with { NewestPerPlace = true }));
        await using var bad = fx.Db.DataSource.CreateCommand("SELECT count(*) FROM rscapret_search_hybrid_page(query => $1, query_text => 'cars', k => 10, \"offset\" => 195)");
        bad.Parameters.Add(new() { Value = new Vector(q) });
        var e = await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteScalarAsync());
        Assert.Contains("offset + k must be at most depth", e.MessageText);
    }

    [Fact]
    public async Task TheTextScoreIsTheShareOfTheQuerysWordsACaptionHolds()
    {
        var scores = await Store.CaptionScoresAsync(["storage tanks", "the of", "Tanks by a harbour!", "Airplanes"], HybridSearchFixture.Captions);
        Assert.Equal(1.0, scores[0, 0]);                      // "storag" and "tank" (stemmed) are both in the tanks caption
        Assert.Equal(0.0, scores[0, 1]);                      // and neither in the residential one
        Assert.All(Enumerable.Range(0, HybridSearchFixture.Captions.Length), j => Assert.Equal(0.0, scores[1, j]));   // stop words only
        Assert.Equal(0.5, scores[2, 0]);                      // one of "tank" and "harbour"
        Assert.Equal(1.0, scores[3, 3]);                      // "airplanes" and "an airplane" stem alike
        Assert.All(Enumerable.Range(0, 4), i => Assert.Equal(0.0, scores[i, 5]));   // no caption
    }
}
