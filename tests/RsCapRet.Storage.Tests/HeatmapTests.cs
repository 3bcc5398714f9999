using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Storage.Tests;

/// <summary>rscapret_heatmap on the change fixture's grids: every tile of a scene or an area scored, bounded, one model.</summary>
public class HeatmapTests(ChangeFixture fx) : IClassFixture<ChangeFixture>
{
    private CatalogStore Store => new(fx.Db.DataSource);

    private static double Cos(float[] a, float[] b) =>
        a.Zip(b, (x, y) => (double)x * y).Sum() / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x));

    [Fact]
    public async Task EveryTileOfASceneIsScoredAndTheChangedOnesScoreHighest()
    {
        var result = await Store.HeatmapAsync(fx.Target, null, fx.After, fx.ModelId, 1000);
        Assert.Null(result.MoreThan);
        Assert.Equal(ChangeFixture.Side * ChangeFixture.Side, result.Tiles.Count);
        Assert.All(result.Tiles, t => Assert.Equal(fx.After, t.SceneId));
        Assert.Equal(result.Tiles.Select(t => t.TileId).Order(), result.Tiles.Select(t => t.TileId));
        // Tile ids follow the grid (rows of Side), so tile i holds AfterVectors[i].
        var first = result.Tiles.Min(t => t.TileId);
        foreach (var t in result.Tiles) Assert.Equal(Cos(fx.Target, fx.AfterVectors[t.TileId - first]), t.Score, 5);
        var top = result.Tiles.OrderByDescending(t => t.Score).Take(ChangeFixture.Changed.Length)
            .Select(t => ((int)(t.TileId - first) / ChangeFixture.Side, (int)(t.TileId - first) % ChangeFixture.Side)).Order();
        Assert.Equal(ChangeFixture.Changed.Order(), top);
    }

    [Fact]
    public async Task AnAreaTakesTheTilesOfEverySceneOfTheModelThatIntersectIt()
    {
        // The first 2 x 2 tiles of the grid at the origin (inside, so the neighbours' shared edges do not count).
        var area = SearchTests.Box(0.0001, 0.0001, 2 * ChangeFixture.Tile - 0.0001, 2 * ChangeFixture.Tile - 0.0001);
        var result = await Store.HeatmapAsync(fx.Target, area, null, fx.ModelId, 1000);
        var byScene = result.Tiles.GroupBy(t => t.SceneId).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, byScene[fx.Before]);
        Assert.Equal(4, byScene[fx.After]);
        Assert.True(byScene[fx.Shifted] >= 4 && byScene.ContainsKey(fx.Half), string.Join(", ", byScene));
        Assert.False(byScene.ContainsKey(fx.OtherModel));   // another model's vectors are not comparable
        Assert.False(byScene.ContainsKey(fx.Elsewhere));
        var both = await Store.HeatmapAsync(fx.Target, area, fx.Before, fx.ModelId, 1000);
        Assert.Equal(4, both.Tiles.Count);
    }

    [Fact]
    public async Task MoreTilesThanAllowedIsSaidNotTruncatedAndBadArgumentsRaise()
    {
        var capped = await Store.HeatmapAsync(fx.Target, null, fx.After, fx.ModelId, 50);
        Assert.Equal(50, capped.MoreThan);
        Assert.Empty(capped.Tiles);
        Assert.Null((await Store.HeatmapAsync(fx.Target, null, fx.After, fx.ModelId, 100)).MoreThan);   // exactly the limit is fine
        var noArea = await Assert.ThrowsAsync<PostgresException>(() => Store.HeatmapAsync(fx.Target, null, null, null, 10));
        Assert.Contains("give an area or a scene", noArea.MessageText);
        var zero = await Assert.ThrowsAsync<PostgresException>(() => Store.HeatmapAsync(fx.Target, null, fx.After, null, 0));
        Assert.Contains("max_tiles must be between 1 and 200000, got 0", zero.MessageText);
        Assert.Null(await Store.GetTileVectorAsync(long.MaxValue));
        var firstTile = (await Store.HeatmapAsync(fx.Target, null, fx.After, fx.ModelId, 1000)).Tiles[0].TileId;
        var (modelId, vector) = (await Store.GetTileVectorAsync(firstTile))!.Value;
        Assert.Equal(fx.ModelId, modelId);
        Assert.Equal(fx.AfterVectors[0], vector);
    }
}
