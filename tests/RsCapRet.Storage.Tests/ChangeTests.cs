using NetTopologySuite.Geometries;
using Npgsql;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// Scenes of one 10 x 10 tile grid: "before" (2018), "after" (2020: the same vectors but for four changed tiles),
/// "shifted" (2021: the after vectors on a grid moved by a tenth of a tile), "half" (moved by half a tile, so no
/// tile overlaps another by IoU 0.5), "elsewhere" (no overlap), and "other model" (the before grid, another model).
/// </summary>
public sealed class ChangeFixture : IAsyncLifetime
{
    public readonly TestDatabase Db = new();
    public int ModelId, OtherModelId;
    public long Before, After, Shifted, Half, Elsewhere, OtherModel;
    public const int Side = 10;
    public const double Tile = 0.001;
    public static readonly (int Row, int Col)[] Changed = [(2, 3), (5, 5), (7, 1), (9, 9)];
    public static readonly DateTimeOffset T2018 = new(2018, 7, 16, 0, 0, 0, TimeSpan.Zero), T2020 = new(2020, 8, 31, 0, 0, 0, TimeSpan.Zero);
    public float[][] BeforeVectors = [], AfterVectors = [];
    public float[] Target = [];

    public async Task InitializeAsync()
    {
        await Db.InitializeAsync();
        var store = new CatalogStore(Db.DataSource);
        ModelId = await store.RegisterModelAsync(new ModelIdentity("change-test", "1", "llm", "vision", "h"));
        OtherModelId = await store.RegisterModelAsync(new ModelIdentity("change-test", "2", "llm", "vision", "h2"));
        var rng = new Random(11);
        BeforeVectors = Enumerable.Range(0, Side * Side).Select(_ => RandomVector(rng)).ToArray();
        Target = RandomVector(rng);
        AfterVectors = BeforeVectors.Select(v => v.ToArray()).ToArray();
        foreach (var (r, c) in Changed)
            AfterVectors[r * Side + c] = Target.Zip(RandomVector(rng), (t, n) => t + 0.3f * n).ToArray();   // near the target
        Before = await Seed(store, "before", ModelId, 0, 0, BeforeVectors, T2018);
        After = await Seed(store, "after", ModelId, 0, 0, AfterVectors, T2020);
        Shifted = await Seed(store, "shifted", ModelId, 0.1 * Tile, 0.1 * Tile, AfterVectors, T2020.AddYears(1));
        Half = await Seed(store, "half", ModelId, 0.5 * Tile, 0.5 * Tile, AfterVectors, T2020.AddYears(1));
        Elsewhere = await Seed(store, "elsewhere", ModelId, 1.0, 0, AfterVectors, T2020);
        OtherModel = await Seed(store, "other-model", OtherModelId, 0, 0, AfterVectors, T2020);
    }

    public static float[] RandomVector(Random rng) => Enumerable.Range(0, 256).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();

    private static async Task<long> Seed(CatalogStore store, string name, int model, double dx, double dy, float[][] vectors, DateTimeOffset acquired)
    {
        var claim = (await store.TryClaimSceneAsync(new SceneFile($"/{name}.tif", "sha-" + name, 1), model, TimeSpan.FromMinutes(5)))!;
        var tiles = new List<TileRecord>();
        for (var r = 0; r < Side; r++)
            for (var c = 0; c < Side; c++)
            {
                double x = dx + c * Tile, y = dy + r * Tile;
                tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(x, y, x + Tile, y + Tile),
                    SearchTests.Box(c, r, c + 1, r + 1), 0, $"{name} {r},{c}", vectors[r * Side + c]));
            }
        var footprint = SearchTests.Box(dx, dy, dx + Side * Tile, dy + Side * Tile);
        await store.CompleteSceneAsync(claim, new SceneMetadata(Side * 224, Side * 224, 3, null, 4326, footprint, acquired), tiles, model, 0);
        return claim.SceneId;
    }

    public Task DisposeAsync() => Db.DisposeAsync();
}

public class ChangeTests(ChangeFixture fx) : IClassFixture<ChangeFixture>
{
    private CatalogStore Store => new(fx.Db.DataSource);

    private Task<ChangeResult> Scenes(long before, long after, int k = 20, double minIou = 0.5, float[]? toward = null, Geometry? area = null) =>
        Store.ChangesAsync(new ChangeRequest(before, after, area, null, null, k, minIou, Toward: toward));

    [Fact]
    public async Task TheChangedTilesRankFirstAndUnchangedPairsAreAtZero()
    {
        var result = await Scenes(fx.Before, fx.After, k: 100);
        Assert.Empty(result.Notes);
        Assert.Equal(ChangeFixture.Side * ChangeFixture.Side, result.Changes.Count);   // every tile has its partner
        var top = result.Changes.Take(ChangeFixture.Changed.Length).Select(c => c.BeforeCaption).Order().ToArray();
        Assert.Equal(ChangeFixture.Changed.Select(rc => $"before {rc.Row},{rc.Col}").Order(), top);
        Assert.All(result.Changes.Take(4), c => Assert.True(c.Distance > 0.5, $"changed pair at {c.Distance}"));
        Assert.All(result.Changes.Skip(4), c => Assert.True(c.Distance < 1e-5, $"unchanged pair {c.BeforeCaption} at {c.Distance}"));
        Assert.All(result.Changes, c =>
        {
            Assert.Equal(c.BeforeCaption!.Replace("before", "after"), c.AfterCaption);   // same ground, never a neighbour
            Assert.InRange(c.Iou, 0.999, 1.0001);
            Assert.Equal(ChangeFixture.T2018, c.BeforeAcquired);
            Assert.Equal(ChangeFixture.T2020, c.AfterAcquired);
        });
        Assert.Equal(result.Changes.Select(c => c.Distance).OrderDescending(), result.Changes.Select(c => c.Distance));
    }

    [Fact]
    public async Task AScenePairedWithAnIdenticalGridHasNoChangeAboveASmallThreshold()
    {
        // "shifted" carries the after vectors: the same imagery, ingested again on another grid.
        var result = await Scenes(fx.After, fx.Shifted, k: 100);
        Assert.NotEmpty(result.Changes);
        Assert.All(result.Changes, c => Assert.True(c.Distance < 1e-5, $"{c.BeforeCaption} -> {c.AfterCaption}: {c.Distance}"));
    }

    [Fact]
    public async Task GridsThatDoNotLineUpPairByOverlapNotByRowAndColumn()
    {
        // A tenth of a tile off on both axes: IoU (0.9 x 0.9) / (2 - 0.81) = 0.68 for every tile and its shifted self.
        var shifted = await Scenes(fx.Before, fx.Shifted, k: 100);
        Assert.Equal(100, shifted.Changes.Count);
        Assert.All(shifted.Changes, c => Assert.InRange(c.Iou, 0.67, 0.69));
        Assert.All(shifted.Changes, c => Assert.Equal(c.BeforeCaption!.Replace("before", "shifted"), c.AfterCaption));
        // Half a tile off: at best (0.5 x 0.5) / 1.75 = 0.14, so nothing pairs at 0.5; at 0.1 a tile pairs with the up to
        // four it overlaps by a quarter (column 0 and row 0 with fewer): (1 + 9 x 2)^2 pairs.
        Assert.Empty((await Scenes(fx.Before, fx.Half, k: 1000)).Changes);
        var loose = await Scenes(fx.Before, fx.Half, k: 1000, minIou: 0.1);
        Assert.Equal(19 * 19, loose.Changes.Count);
        Assert.All(loose.Changes, c => Assert.InRange(c.Iou, 0.14, 0.15));
    }

    [Fact]
    public async Task TowardRanksByMovementTowardTheQuery()
    {
        var result = await Scenes(fx.Before, fx.After, k: 4, toward: fx.Target);
        Assert.Equal(ChangeFixture.Changed.Select(rc => $"before {rc.Row},{rc.Col}").Order(), result.Changes.Select(c => c.BeforeCaption).Order());
        Assert.All(result.Changes, c => Assert.True(c.TowardGain > 0.5, $"gain {c.TowardGain}"));
        // Away from the target instead: the changed tiles moved away from its opposite, so they rank last.
        var away = await Scenes(fx.Before, fx.After, k: 100, toward: fx.Target.Select(x => -x).ToArray());
        Assert.All(away.Changes.TakeLast(4), c => Assert.True(c.TowardGain < -0.5));
    }

    [Fact]
    public async Task AnAreaRestrictsThePairs()
    {
        var area = SearchTests.Box(0, 0, 0.0045, 0.0045);   // rows and columns 0-4
        var result = await Scenes(fx.Before, fx.After, k: 100, area: area);
        Assert.Equal(25, result.Changes.Count);
        Assert.Equal("before 2,3", result.Changes[0].BeforeCaption);
    }

    [Fact]
    public async Task TimeRangesOverAnAreaGiveTheSameAnswerAsTheScenes()
    {
        var area = SearchTests.Box(0, 0, 0.01, 0.01);
        var byTime = await Store.ChangesAsync(new ChangeRequest(null, null, area,
            new TimeRange(null, new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            new TimeRange(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2021, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            K: 10, ModelId: fx.ModelId));
        var byScene = await Scenes(fx.Before, fx.After, k: 10);
        Assert.Equal(byScene.Changes.Select(c => (c.BeforeTile, c.AfterTile)), byTime.Changes.Select(c => (c.BeforeTile, c.AfterTile)));
        // Without a model, the other model's 2020 scene is in the after set but pairs with nothing of the first model's.
        var anyModel = await Store.ChangesAsync(new ChangeRequest(null, null, area,
            new TimeRange(null, new DateTimeOffset(2019, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            new TimeRange(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), new DateTimeOffset(2021, 1, 1, 0, 0, 0, TimeSpan.Zero)), K: 100));
        Assert.All(anyModel.Changes, c => Assert.Equal(fx.After, c.AfterScene));
        var empty = await Store.ChangesAsync(new ChangeRequest(null, null, area,
            new TimeRange(null, new DateTimeOffset(2010, 1, 1, 0, 0, 0, TimeSpan.Zero)), new TimeRange(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), null)));
        Assert.Empty(empty.Changes);
        Assert.Contains("no ingested scene acquired in", Assert.Single(empty.Notes));
    }

    [Theory]
    [InlineData("elsewhere", "do not overlap")]
    [InlineData("other model", "different models")]
    [InlineData("missing", "no scene 999999")]
    public async Task InputsThatCannotPairGiveNoRowsAndSayWhy(string which, string expected)
    {
        var after = which switch { "elsewhere" => fx.Elsewhere, "other model" => fx.OtherModel, _ => 999999 };
        var result = await Scenes(fx.Before, after);
        Assert.Empty(result.Changes);
        Assert.Contains(expected, Assert.Single(result.Notes));
    }

    [Fact]
    public async Task ASceneThatIsNotIngestedGivesNoRowsAndSaysSo()
    {
        var store = Store;
        var claim = (await store.TryClaimSceneAsync(new SceneFile("/pending.tif", "sha-pending", 1), fx.ModelId, TimeSpan.FromMinutes(5)))!;
        var result = await Scenes(fx.Before, claim.SceneId);
        Assert.Empty(result.Changes);
        Assert.Contains("is not ingested", Assert.Single(result.Notes));
    }

    [Fact]
    public async Task BadArgumentsAndOversizedSetsRaiseClearly()
    {
        var e = await Assert.ThrowsAsync<PostgresException>(() => Scenes(fx.Before, fx.After, minIou: 0));
        Assert.Contains("min_iou must be in (0, 1]", e.MessageText);
        e = await Assert.ThrowsAsync<PostgresException>(() => Scenes(fx.Before, fx.Before));
        Assert.Contains("the same scene", e.MessageText);
        e = await Assert.ThrowsAsync<PostgresException>(() => Store.ChangesAsync(new ChangeRequest(null, null, SearchTests.Box(0, 0, 1, 1),
            new TimeRange(null, new DateTimeOffset(2021, 1, 1, 0, 0, 0, TimeSpan.Zero)), new TimeRange(new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero), null))));
        Assert.Contains("overlap", e.MessageText);

        await using var conn = await fx.Db.DataSource.OpenConnectionAsync();
        await using (var set = new NpgsqlCommand("SET rscapret.changes_max_tiles = 50", conn)) await set.ExecuteNonQueryAsync();
        await using var cmd = new NpgsqlCommand($"SELECT count(*) FROM rscapret_changes({fx.Before}, {fx.After})", conn);
        e = await Assert.ThrowsAsync<PostgresException>(() => cmd.ExecuteScalarAsync());
        Assert.Contains("more than rscapret.changes_max_tiles (50)", e.MessageText);
        await using (var reset = new NpgsqlCommand("RESET rscapret.changes_max_tiles", conn)) await reset.ExecuteNonQueryAsync();
    }

    [Fact]
    public async Task ScenesAreFoundByIdOrByPath()
    {
        Assert.Equal(fx.Before, (await Store.FindCompletedSceneAsync(fx.Before.ToString(), null))!.Id);
        Assert.Equal(fx.After, (await Store.FindCompletedSceneAsync("/after.tif", fx.ModelId))!.Id);
        Assert.Null(await Store.FindCompletedSceneAsync("/after.tif", fx.OtherModelId));
        Assert.Null(await Store.FindCompletedSceneAsync("/nowhere.tif", null));
    }
}
