using Npgsql;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// rscapret_scene_classes on a 6 x 5 grid whose tile vectors are noisy copies of three prompt vectors (tile i of
/// prompt i % 3), one tile left out as if skipped: each tile gets its prompt, scores are the cosines, in grid order.
/// </summary>
public sealed class SceneClassesTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static float[] Unit(float[] v)
    {
        var n = (float)Math.Sqrt(v.Sum(x => (double)x * x));
        return v.Select(x => x / n).ToArray();
    }

    private static double Cos(float[] a, float[] b) =>
        a.Zip(b, (x, y) => (double)x * y).Sum() / Math.Sqrt(a.Sum(x => (double)x * x) * b.Sum(x => (double)x * x));

    [Fact]
    public async Task EveryTileTakesItsNearestPromptWithScoreAndRunnerUp()
    {
        var store = new CatalogStore(db.DataSource);
        var model = await store.RegisterModelAsync(new ModelIdentity("classes-test", "1", "llm", "vision", "h"));
        var rng = new Random(5);
        var prompts = Enumerable.Range(0, 3).Select(_ => Unit(ChangeFixture.RandomVector(rng))).ToArray();
        var claim = (await store.TryClaimSceneAsync(new SceneFile("/classes.tif", "sha-classes", 1), model, TimeSpan.FromMinutes(5)))!;
        var tiles = new List<TileRecord>();
        var vectors = new Dictionary<(int, int), float[]>();
        for (var r = 0; r < 6; r++)
            for (var c = 0; c < 5; c++)
            {
                if ((r, c) == (2, 2)) continue;   // skipped for nodata
                var v = prompts[(r * 5 + c) % 3].Zip(ChangeFixture.RandomVector(rng), (p, n) => p + 0.03f * n).ToArray();
                vectors[(r, c)] = v;
                tiles.Add(new TileRecord(r, c, c * 224, r * 224, 224, 224, SearchTests.Box(c, -r - 1, c + 1, -r),
                    SearchTests.Box(c, -r - 1, c + 1, -r), 0, null, v));
            }
        await store.CompleteSceneAsync(claim, new SceneMetadata(5 * 224, 6 * 224, 3, null, 4326, SearchTests.Box(0, -6, 5, 0), null), tiles, model, 0);
        var scene = (await store.GetSceneAsync(claim.SceneId))!;

        var result = await store.SceneClassesAsync(scene, prompts);
        Assert.Equal(29, result.Tiles.Count);
        Assert.Equal(4326, result.CrsEpsg);
        Assert.Equal(result.Tiles.OrderBy(t => t.GridRow).ThenBy(t => t.GridCol).Select(t => t.TileId), result.Tiles.Select(t => t.TileId));
        foreach (var t in result.Tiles)
        {
            var v = vectors[(t.GridRow, t.GridCol)];
            Assert.Equal((t.GridRow * 5 + t.GridCol) % 3, t.ClassIndex);
            var cos = prompts.Select(p => Cos(v, p)).OrderDescending().ToArray();
            Assert.Equal(cos[0], t.Score, 5);
            Assert.Equal(cos[1], t.RunnerUp!.Value, 5);
            Assert.True(t.Margin > 0.5, $"margin {t.Margin}");
        }

        // One prompt: everything takes it, no runner-up; a tie goes to the lower index.
        var single = await store.SceneClassesAsync(scene, [prompts[1]]);
        Assert.All(single.Tiles, t => { Assert.Equal(0, t.ClassIndex); Assert.Null(t.RunnerUp); });
        var tie = await store.SceneClassesAsync(scene, [prompts[2], prompts[2]]);
        Assert.All(tie.Tiles, t => Assert.Equal(0, t.ClassIndex));

        var none = await Assert.ThrowsAsync<PostgresException>(() => store.SceneClassesAsync(scene, []));
        Assert.Contains("no prompts", none.MessageText);
        var many = await Assert.ThrowsAsync<PostgresException>(() => store.SceneClassesAsync(scene, Enumerable.Repeat(prompts[0], 255).ToList()));
        Assert.Contains("at most 254 prompts, got 255", many.MessageText);
    }
}
