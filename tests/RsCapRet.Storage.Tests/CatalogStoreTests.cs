using NetTopologySuite.Geometries;
using Npgsql;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

public class CatalogStoreTests(TestDatabase db) : IClassFixture<TestDatabase>
{
    private static readonly GeometryFactory Wgs84 = new(new PrecisionModel(), 4326);

    private static Polygon Box(double minX, double minY, double maxX, double maxY, GeometryFactory? f = null) =>
        (f ?? Wgs84).CreatePolygon([new(minX, minY), new(maxX, minY), new(maxX, maxY), new(minX, maxY), new(minX, minY)]);

    /// <summary>A unit 256-d vector pointing mostly along axis <paramref name="axis"/>.</summary>
    private static float[] Direction(int axis, float leak = 0.1f)
    {
        var v = new float[256];
        v[axis] = 1f;
        v[(axis + 1) % 256] = leak;
        return v;
    }

    private static async Task<int> ModelAsync(CatalogStore store, string hash = "abc") =>
        await store.RegisterModelAsync(new ModelIdentity("test-model", "1", "llm", "vision", hash));

    [Fact]
    public async Task ExtensionsPostgisAndVectorArePresent()
    {
        await using var cmd = db.DataSource.CreateCommand("SELECT extname, extversion FROM pg_extension WHERE extname IN ('postgis','vector') ORDER BY 1");
        await using var r = await cmd.ExecuteReaderAsync();
        var found = new Dictionary<string, string>();
        while (await r.ReadAsync()) found[r.GetString(0)] = r.GetString(1);
        Assert.True(found.ContainsKey("postgis"), "postgis extension missing");
        Assert.True(found.ContainsKey("vector"), "vector extension missing");
        Assert.StartsWith("0.8", found["vector"]);
    }

    [Fact]
    public async Task MigrationsAreRecordedOnceAndReRunIsANoOp()
    {
        var embedded = MigrationRunner.Embedded();
        Assert.Equal(embedded.Select(m => m.Version), db.AppliedOnCreate);
        Assert.Empty(await MigrationRunner.ApplyAsync(db.ConnectionString));
        await using var cmd = db.DataSource.CreateCommand("SELECT count(*), count(DISTINCT version) FROM schema_migrations");
        await using var r = await cmd.ExecuteReaderAsync();
        await r.ReadAsync();
        Assert.Equal(embedded.Count, r.GetInt64(0));
        Assert.Equal(embedded.Count, r.GetInt64(1));
    }

    [Fact]
    public async Task ChangedAppliedMigrationIsRefused()
    {
        var tampered = MigrationRunner.Embedded().Select(m => m.Version == 1 ? m with { Sql = m.Sql + "\n-- edited" } : m).ToList();
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => MigrationRunner.ApplyAsync(db.ConnectionString, tampered));
        Assert.Contains("0001_extensions.sql was changed", ex.Message);
    }

    [Fact]
    public async Task NearestWithBboxReturnsOnlyIntersectingTilesInDistanceOrder()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var claim = (await store.TryClaimSceneAsync(new SceneFile("/data/a.tif", "sha-knn", 10), modelId, TimeSpan.FromMinutes(5)))!;
        var utm = new GeometryFactory(new PrecisionModel(), 26914);
        // Tiles 0..5 along a row of 1°-wide cells; tile i points along axis i.
        var tiles = Enumerable.Range(0, 6).Select(i => new TileRecord(0, i, i * 256, 0, 256, 256,
            Box(-98 + i, 47, -97 + i, 48), Box(i * 1000, 0, i * 1000 + 1000, 1000, utm), 0f, $"tile {i}", Direction(i))).ToList();
        await store.CompleteSceneAsync(claim, new SceneMetadata(1536, 256, 3, null, 26914, Box(-98, 47, -92, 48), null), tiles, modelId, 0);

        // The query points along axis 1 with some of axis 4; the bbox covers tiles 3..5 only.
        var query = new float[256]; query[1] = 1f; query[4] = 0.5f;
        var hits = await store.SearchAsync(query, 10, new SearchFilter(Area: Box(-94.5, 47.2, -91.5, 47.8), ModelId: modelId));
        Assert.Equal([4, 3, 5], hits.Select(h => h.GridCol));
        Assert.All(hits, h => Assert.True(h.Footprint!.Intersects(Box(-94.5, 47.2, -91.5, 47.8))));
        Assert.True(hits[0].Distance < hits[1].Distance);
        Assert.Equal("tile 4", hits[0].Caption);

        var unfiltered = await store.SearchAsync(query, 2, new SearchFilter(ModelId: modelId));
        Assert.Equal([1, 4], unfiltered.Select(h => h.GridCol));
        Assert.Equal(SceneStatus.Done, (await store.GetSceneAsync(claim.SceneId))!.Status);
    }

    [Fact]
    public async Task SameContentIsClaimedOnceAndFailedScenesCanBeRetried()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var file = new SceneFile("/data/b.tif", "sha-claim", 10);
        var first = await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5));
        Assert.NotNull(first);
        Assert.Null(await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5))); // held by the first worker
        Assert.True(await store.FailSceneAsync(first!, "boom"));
        var retry = await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5)); // retry reclaims
        Assert.Equal(first.SceneId, retry!.SceneId);
        await store.CompleteSceneAsync(retry, new SceneMetadata(1, 1, 3, null, null, null, null), [], modelId, 4);
        var row = await store.GetSceneAsync(first.SceneId);
        Assert.Equal(SceneStatus.Empty, row!.Status);
        Assert.Equal(4, row.SkippedTiles);
        Assert.Null(await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5))); // already ingested
    }

    [Fact]
    public async Task FailedCopyLeavesNoTilesAndSceneNotDone()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var claim = (await store.TryClaimSceneAsync(new SceneFile("/data/c.tif", "sha-atomic", 10), modelId, TimeSpan.FromMinutes(5)))!;
        var sceneId = claim.SceneId;
        var utm = new GeometryFactory(new PrecisionModel(), 26914);
        var good = new TileRecord(0, 0, 0, 0, 1, 1, Box(0, 0, 1, 1), Box(0, 0, 1, 1, utm), 0, "ok", Direction(0));
        var bad = good with { GridCol = 1, Embedding = new float[12] };
        await Assert.ThrowsAsync<ArgumentException>(() =>
            store.CompleteSceneAsync(claim, new SceneMetadata(1, 1, 3, null, null, null, null), [good, bad], modelId, 0));
        await using var cmd = db.DataSource.CreateCommand("SELECT count(*) FROM tiles WHERE scene_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = sceneId });
        Assert.Equal(0L, (long)(await cmd.ExecuteScalarAsync())!);
        Assert.Equal(SceneStatus.Ingesting, (await store.GetSceneAsync(sceneId))!.Status);
    }

    [Fact]
    public async Task AWorkerWhoseLeaseWasTakenOverCannotCommitHeartbeatOrFailTheScene()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var file = new SceneFile("/data/d.tif", "sha-fence", 10);
        var utm = new GeometryFactory(new PrecisionModel(), 26914);
        var tile = new TileRecord(0, 0, 0, 0, 1, 1, Box(0, 0, 1, 1), Box(0, 0, 1, 1, utm), 0, "stale", Direction(0));
        var meta = new SceneMetadata(1, 1, 3, null, null, null, null);

        var stale = (await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMilliseconds(1)))!;
        var staleWriter = await store.BeginSceneTilesAsync(stale, modelId);
        await staleWriter.WriteAsync([tile]);
        await Task.Delay(50);
        var current = await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5));   // the lease ran out: taken over
        Assert.NotNull(current);
        Assert.Equal(stale.SceneId, current.SceneId);
        Assert.NotEqual(stale.Token, current.Token);

        await Assert.ThrowsAsync<SceneLeaseLostException>(() => staleWriter.CompleteAsync(meta, 0));
        await staleWriter.DisposeAsync();   // rolls back
        await Assert.ThrowsAsync<SceneLeaseLostException>(() => store.HeartbeatAsync(stale));
        Assert.False(await store.FailSceneAsync(stale, "stale worker's error"));
        Assert.Equal(SceneStatus.Ingesting, (await store.GetSceneAsync(stale.SceneId))!.Status);

        await store.HeartbeatAsync(current);
        await store.CompleteSceneAsync(current, meta, [tile with { Caption = "current" }], modelId, 0);
        var row = await store.GetSceneAsync(current.SceneId);
        Assert.Equal(SceneStatus.Done, row!.Status);
        await using var cmd = db.DataSource.CreateCommand("SELECT string_agg(caption, ',') FROM tiles WHERE scene_id = $1");
        cmd.Parameters.Add(new NpgsqlParameter { Value = current.SceneId });
        Assert.Equal("current", (string)(await cmd.ExecuteScalarAsync())!);
    }

    [Fact]
    public async Task TheHoldersOwnLeaseDecidesWhenItsSceneMayBeTakenOver()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var file = new SceneFile("/data/e.tif", "sha-holder-lease", 10);
        var holder = (await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(5)))!;
        await Task.Delay(50);
        // A process configured with a far shorter lease does not take a live holder's scene...
        Assert.Null(await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMilliseconds(1)));
        var left = await store.LeaseLeftAsync(holder.SceneId);
        Assert.InRange(left!.Value.TotalSeconds, 290, 300);

        // ...but takes it once the holder's own (short) lease has lapsed without a renewal. Five seconds: long enough
        // that a loaded machine cannot let it lapse between the renewal and the next claim.
        var shortHolder = (await store.TryClaimSceneAsync(file with { ContentSha256 = "sha-holder-short" }, modelId, TimeSpan.FromSeconds(5)))!;
        await store.HeartbeatAsync(shortHolder);
        Assert.Null(await store.TryClaimSceneAsync(file with { ContentSha256 = "sha-holder-short" }, modelId, TimeSpan.FromMinutes(5)));
        var deadline = DateTime.UtcNow + TimeSpan.FromMinutes(1);
        while (await store.LeaseLeftAsync(shortHolder.SceneId) != TimeSpan.Zero && DateTime.UtcNow < deadline) await Task.Delay(100);
        Assert.Equal(TimeSpan.Zero, await store.LeaseLeftAsync(shortHolder.SceneId));
        Assert.NotNull(await store.TryClaimSceneAsync(file with { ContentSha256 = "sha-holder-short" }, modelId, TimeSpan.FromMinutes(5)));
    }

    [Fact]
    public async Task ARecordedFailureReleasesTheClaimAtOnceAndFencesIt()
    {
        var store = new CatalogStore(db.DataSource);
        var modelId = await ModelAsync(store);
        var file = new SceneFile("/data/f.tif", "sha-release", 10);
        var meta = new SceneMetadata(1, 1, 3, null, null, null, null);
        var first = (await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(10)))!;
        var writer = await store.BeginSceneTilesAsync(first, modelId);

        Assert.True(await store.FailSceneAsync(first, "cancelled (SIGINT)"));
        var row = await store.GetSceneAsync(first.SceneId);
        Assert.Equal((SceneStatus.Failed, "cancelled (SIGINT)"), (row!.Status, row.Error));
        Assert.Null(await store.LeaseLeftAsync(first.SceneId));
        // The released run can neither renew nor commit what it had open...
        await Assert.ThrowsAsync<SceneLeaseLostException>(() => store.HeartbeatAsync(first));
        await Assert.ThrowsAsync<SceneLeaseLostException>(() => writer.CompleteAsync(meta, 0));
        await writer.DisposeAsync();
        // ...and the next run claims the scene without waiting out the ten minutes.
        var next = await store.TryClaimSceneAsync(file, modelId, TimeSpan.FromMinutes(10));
        Assert.Equal(first.SceneId, next!.SceneId);
        await store.CompleteSceneAsync(next, meta, [], modelId, 0);
        Assert.False(await store.FailSceneAsync(next, "late"));   // a completed scene stays completed
        Assert.Equal(SceneStatus.Empty, (await store.GetSceneAsync(next.SceneId))!.Status);
    }
}
