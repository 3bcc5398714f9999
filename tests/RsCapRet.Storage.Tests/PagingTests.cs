using Npgsql;
using Pgvector;
using RsCapRet.Storage;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// Issue 29, paging: a page (offset, k) holds exactly the rows offset + 1 .. offset + k of one longer search, through
/// the index path (a model filter alone: rscapret_search's common case), a filtered index path, the exact path and
/// image-to-image; offset + k is bounded by the ranking's depth.
/// </summary>
public class PagingTests(SearchFixture fx) : IClassFixture<SearchFixture>
{
    private CatalogStore Store => new(fx.Db.DataSource);

    private static float[] Query(int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    private static void SameRows(IReadOnlyList<TileHit> expected, IReadOnlyList<TileHit> page)
    {
        Assert.Equal(expected.Select(h => h.TileId), page.Select(h => h.TileId));
        Assert.Equal(expected.Select(h => h.Distance), page.Select(h => h.Distance));
    }

    public static TheoryData<string> Filters => new() { "model", "bbox", "exact" };

    private SearchFilter FilterOf(string name) => name switch
    {
        "model" => new SearchFilter(ModelId: fx.ModelId),
        "bbox" => new SearchFilter(Area: SearchTests.Box(0.0, 0.0, 0.3, 0.3), ModelId: fx.ModelId),
        _ => new SearchFilter(ModelId: fx.ModelId, Exact: true),
    };

    [Theory]
    [MemberData(nameof(Filters))]
    public async Task PageTwoOfFiveIsRowsSixToTenOfTen(string filter)
    {
        for (var seed = 1; seed <= 5; seed++)
        {
            var ten = await Store.SearchAsync(Query(seed), 10, 0, FilterOf(filter));
            Assert.Equal(10, ten.Count);
            SameRows(ten.Take(5).ToList(), await Store.SearchAsync(Query(seed), 5, 0, FilterOf(filter)));
            SameRows(ten.Skip(5).ToList(), await Store.SearchAsync(Query(seed), 5, 5, FilterOf(filter)));
        }
    }

    [Fact]
    public async Task ConsecutivePagesOfTheExactRankingTileItWithoutGapsOrRepeats()
    {
        // Exact ranking: any depth's first rows are the same, so pages of 20 are one search of 60 cut in three. (The
        // index path is exact per depth, as above; across depths its candidate list grows with offset + k — see the
        // docs/cli.md, "Paging".)
        var q = Query(11);
        var filter = new SearchFilter(ModelId: fx.ModelId, Exact: true);
        var all = await Store.SearchAsync(q, 60, 0, filter);
        var pages = new List<TileHit>();
        for (var offset = 0; offset < 60; offset += 20) pages.AddRange(await Store.SearchAsync(q, 20, offset, filter));
        SameRows(all, pages);
        Assert.Equal(60, pages.Select(h => h.TileId).Distinct().Count());
    }

    [Fact]
    public async Task APageOfAThousandRowsAndTheDepthLimit()
    {
        var q = Query(12);
        var thousand = await Store.SearchAsync(q, 1000, 0, new SearchFilter(ModelId: fx.ModelId));
        Assert.Equal(1000, thousand.Count);
        SameRows(thousand.Skip(990).ToList(), await Store.SearchAsync(q, 10, 990, new SearchFilter(ModelId: fx.ModelId)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.SearchAsync(q, 10, 991, new SearchFilter(ModelId: fx.ModelId)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.SearchAsync(q, 10, -1, new SearchFilter(ModelId: fx.ModelId)));
    }

    [Fact]
    public async Task TheSqlPageFunctionsReturnWhatTheStoreReturns()
    {
        // migrations/0020: rscapret_search_page and rscapret_search_by_tile_page, for analysts.
        var q = Query(14);
        var page = await Store.SearchAsync(q, 5, 5, new SearchFilter(ModelId: fx.ModelId));
        await using (var cmd = fx.Db.DataSource.CreateCommand("SELECT tile_id, distance FROM rscapret_search_page(query => $1, k => 5, \"offset\" => 5, model => $2)"))
        {
            cmd.Parameters.Add(new() { Value = new Vector(q) });
            cmd.Parameters.Add(new() { Value = fx.ModelId });
            var rows = new List<(long, double)>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) rows.Add((r.GetInt64(0), r.GetDouble(1)));
            Assert.Equal(page.Select(h => (h.TileId, h.Distance)), rows);
        }
        var tile = page[0].TileId;
        var byTile = (await Store.SearchByTileAsync(tile, 4, 3, null))!;
        await using (var cmd = fx.Db.DataSource.CreateCommand("SELECT tile_id FROM rscapret_search_by_tile_page(tile => $1, k => 4, \"offset\" => 3)"))
        {
            cmd.Parameters.Add(new() { Value = tile });
            var rows = new List<long>();
            await using var r = await cmd.ExecuteReaderAsync();
            while (await r.ReadAsync()) rows.Add(r.GetInt64(0));
            Assert.Equal(byTile.Select(h => h.TileId), rows);
        }
        await using (var bad = fx.Db.DataSource.CreateCommand("SELECT count(*) FROM rscapret_search_page(query => $1, k => 10, \"offset\" => 991)"))
        {
            bad.Parameters.Add(new() { Value = new Vector(q) });
            var e = await Assert.ThrowsAsync<PostgresException>(() => bad.ExecuteScalarAsync());
            Assert.Contains("offset + k must be at most 1000", e.MessageText);
        }
    }

    [Fact]
    public async Task ImageToImagePagesContinueTheSameRanking()
    {
        var tile = (await Store.SearchAsync(Query(13), 1, 0, new SearchFilter(ModelId: fx.ModelId)))[0].TileId;
        var ten = (await Store.SearchByTileAsync(tile, 10, 0, null))!;
        SameRows(ten.Skip(5).ToList(), (await Store.SearchByTileAsync(tile, 5, 5, null))!);
        Assert.DoesNotContain(ten, h => h.TileId == tile);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => Store.SearchByTileAsync(tile, 10, 990, null));
    }
}
