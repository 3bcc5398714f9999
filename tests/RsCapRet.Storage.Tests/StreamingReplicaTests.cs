using Npgsql;
using RsCapRet.Core;
using RsCapRet.Storage;
using RsCapRet.TestSupport;

namespace RsCapRet.Storage.Tests;

/// <summary>
/// Searches served from a streaming replica while ingestion writes to the primary (RSCAPRET_DB_READ): a primary
/// cluster of its own and its replica, both made by scripts/db.sh (start, replica start) in a scratch data folder
/// on free loopback ports, so the shared local cluster is not copied.
/// </summary>
public sealed class StreamingReplicaTests : IAsyncLifetime
{
    private readonly string _dataDir = Path.Combine(Path.GetTempPath(), "rscapret-replica-" + Guid.NewGuid().ToString("N")[..10]);
    private readonly int _port = LoopbackPorts.Free(), _replicaPort = LoopbackPorts.Free();
    private NpgsqlDataSource? _primary, _replica;

    private async Task<string> DbScriptAsync(params string[] args)
    {
        string[] env = ["env", $"RSCAPRET_DATA_DIR={_dataDir}", $"RSCAPRET_PG_PORT={_port}", $"RSCAPRET_PG_REPLICA_PORT={_replicaPort}",
                        "bash", Path.Combine(RepositoryPaths.FindRoot(), "scripts", "db.sh"), .. args];
        var (code, output, errors) = await TestProcess.RunAsync(env[0], env[1..], timeout: TimeSpan.FromMinutes(3));
        Assert.True(code == 0, $"scripts/db.sh {string.Join(' ', args)} exited {code}:\n{output}\n{errors}");
        return errors;
    }

    private static string ConnectionStringIn(string envFile, string variable) =>
        File.ReadAllLines(envFile).Select(l => l.Trim()).Single(l => l.StartsWith($"export {variable}=", StringComparison.Ordinal))
            [$"export {variable}=".Length..].Trim('\'');

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dataDir); // 755: the clusters run as the postgres user when the tests run as root
        await DbScriptAsync("start");
        var primary = ConnectionStringIn(Path.Combine(_dataDir, "db.env"), "RSCAPRET_DB");
        _primary = await RsCapRetDatabase.OpenAsync(primary);
        await DbScriptAsync("replica", "start");
        var read = ConnectionStringIn(Path.Combine(_dataDir, "db-read.env"), RsCapRetDatabase.ReadConnectionStringVariable);
        _replica = RsCapRetDatabase.CreateDataSource(read);
    }

    public async Task DisposeAsync()
    {
        if (_replica != null) await _replica.DisposeAsync();
        if (_primary != null) await _primary.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        try { await DbScriptAsync("replica", "stop"); await DbScriptAsync("stop"); }
        finally { Directory.Delete(_dataDir, recursive: true); }
    }

    /// <summary>Waits until the replica has replayed the primary's WAL up to now.</summary>
    private async Task CaughtUpAsync()
    {
        var target = await ModelPartitionTests.ScalarAsync<string>(_primary!, "SELECT pg_current_wal_lsn()::text");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!await ModelPartitionTests.ScalarAsync<bool>(_replica!, $"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"))
        {
            Assert.True(DateTime.UtcNow < deadline, $"the replica did not replay up to {target} within 60 s");
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task SearchesOnTheReplicaSeeWhatThePrimaryIngestedOnceReplayed()
    {
        Assert.False(await ModelPartitionTests.ScalarAsync<bool>(_primary!, "SELECT pg_is_in_recovery()"));
        Assert.True(await ModelPartitionTests.ScalarAsync<bool>(_replica!, "SELECT pg_is_in_recovery()"));
        var store = new CatalogStore(_primary!, _replica);
        Assert.Same(_replica, store.ReadSource);

        // Writes through the store go to the primary (the replica refuses them).
        var model = await store.RegisterModelAsync(new ModelIdentity("replica", "1", "llm", "vision", "h"));
        var rng = new Random(4);
        var centre = SingleStatementSearchFixture.RandomVector(rng);
        var vectors = Enumerable.Range(0, 100).Select(_ => SingleStatementSearchFixture.Noisy(centre, rng, 0.5f)).ToList();
        var first = await ModelPartitionTests.SeedSceneAsync(store, "first", model, vectors);
        var refused = await Assert.ThrowsAsync<PostgresException>(() => new CatalogStore(_replica!).RegisterModelAsync(new ModelIdentity("x", "1", "l", "v", "h")));
        Assert.Equal(PostgresErrorCodes.ReadOnlySqlTransaction, refused.SqlState);

        await CaughtUpAsync();
        var hits = await store.SearchAsync(centre, 10, new SearchFilter(ModelId: model));
        Assert.Equal(10, hits.Count);
        Assert.All(hits, h => Assert.Equal(first, h.SceneId));
        var primaryHits = await new CatalogStore(_primary!).SearchAsync(centre, 10, new SearchFilter(ModelId: model));
        Assert.Equal(primaryHits.Select(h => (h.TileId, h.Distance)), hits.Select(h => (h.TileId, h.Distance)));

        // With replay paused the replica answers from what it has: a scene ingested meanwhile on the primary is in
        // the primary's answers and not yet in the replica's; once replayed, it is in both.
        await using (var pause = _replica!.CreateCommand("SELECT pg_wal_replay_pause()")) await pause.ExecuteNonQueryAsync();
        var closer = vectors.Select(v => SingleStatementSearchFixture.Noisy(centre, rng, 0.05f)).Take(20).ToList();
        var second = await ModelPartitionTests.SeedSceneAsync(store, "second", model, closer, lonOffset: 2);
        Assert.All(await new CatalogStore(_primary!).SearchAsync(centre, 10, new SearchFilter(ModelId: model)), h => Assert.Equal(second, h.SceneId));
        Assert.All(await store.SearchAsync(centre, 10, new SearchFilter(ModelId: model)), h => Assert.Equal(first, h.SceneId));
        await using (var resume = _replica.CreateCommand("SELECT pg_wal_replay_resume()")) await resume.ExecuteNonQueryAsync();
        await CaughtUpAsync();
        Assert.All(await store.SearchAsync(centre, 10, new SearchFilter(ModelId: model)), h => Assert.Equal(second, h.SceneId));
        var byTile = (await store.SearchByTileAsync(hits[0].TileId, 5))!;
        Assert.Equal(5, byTile.Count);
    }
}
