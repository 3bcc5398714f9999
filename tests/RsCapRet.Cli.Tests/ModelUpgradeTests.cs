using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Hangfire;
using Hangfire.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using RsCapRet.Cli.Commands;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Storage;
using RsCapRet.TestSupport;
using RsCapRet.Web;
using static RsCapRet.TestSupport.CliRunner;

namespace RsCapRet.Cli.Tests;

/// <summary>Model folders for the upgrade tests: the tiny test model, and a copy of it with another version (another identity).</summary>
internal static class UpgradeModels
{
    public static (string A, string B) Create(string directory)
    {
        var a = TinyModelFolder.Create(Path.Combine(directory, "model-a"));
        return (a, CopyWithVersion(a, Path.Combine(directory, "model-b"), "2"));
    }

    /// <summary>The same weights under another version in rscapret.json: the catalogue registers it as another model.</summary>
    public static string CopyWithVersion(string from, string to, string version)
    {
        foreach (var file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
        var config = Path.Combine(to, RsCapRet.Model.RsCapRetConfig.FileName);
        var json = JsonNode.Parse(File.ReadAllText(config))!;
        json["version"] = version;
        File.WriteAllText(config, json.ToJsonString());
        return to;
    }

    public static async Task<long> ShownSceneAsync(CatalogStore store, string path, string model) =>
        (await store.GetScenePathAsync(path, await store.RegisterModelAsync(RsCapRetTileEncoder.IdentityOf(model))))?.Current?.Id
        ?? throw new InvalidOperationException($"{path} shows no complete version of {model}");
}

/// <summary>
/// `rscapret reindex --model B --wait` re-encodes the archive while the CLI and a running web host keep searching with
/// the activated model A; `models activate` switches both (the host within seconds, without a restart).
/// </summary>
public sealed class ModelUpgradeTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-upgrade-");
    public void Dispose() => _dir.Delete(true);

    private async Task<long> CliSearchSceneAsync(params string[] extra)
    {
        var (code, output, err) = await Run(["search", "a farm", "--k", "1", "--format", "geojson", "--device", "cpu", "--db", db.ConnectionString, .. extra]);
        Assert.True(code == 0, err);
        using var doc = JsonDocument.Parse(output);
        return doc.RootElement.GetProperty("features")[0].GetProperty("properties").GetProperty("scene_id").GetInt64();
    }

    private static async Task<(HttpStatusCode Status, long? Scene, string Body)> ApiSearchAsync(HttpClient http)
    {
        var response = await http.GetAsync("/api/search?q=a%20farm&k=1");
        var body = await response.Content.ReadAsStringAsync();
        if (response.StatusCode != HttpStatusCode.OK) return (response.StatusCode, null, body);
        using var doc = JsonDocument.Parse(body);
        return (response.StatusCode, doc.RootElement.GetProperty("features")[0].GetProperty("properties").GetProperty("scene_id").GetInt64(), body);
    }

    /// <summary>Asks the host until <paramref name="done"/> holds (it re-reads the activated model every couple of seconds).</summary>
    private static async Task<(HttpStatusCode Status, long? Scene, string Body)> ApiUntilAsync(HttpClient http, Func<(HttpStatusCode Status, long? Scene, string Body), bool> done)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var answer = await ApiSearchAsync(http);
            if (done(answer) || DateTime.UtcNow > deadline) return answer;
            await Task.Delay(250);
        }
    }

    private static JsonElement ModelOf(JsonDocument list, string version) =>
        list.RootElement.EnumerateArray().Single(m => m.GetProperty("version").GetString() == version);

    [Fact]
    public async Task ReindexKeepsServingTheActiveModelUntilTheNewOneIsActivatedThenCliAndApiSwitch()
    {
        if (CommonOptions.ModelPinned(null)) return;   // RSCAPRET_MODEL pins every search of this process to one model
        var cs = db.ConnectionString;
        var (modelA, modelB) = UpgradeModels.Create(_dir.FullName);
        var scene = TestScenes.SmallScene(_dir.FullName, "upgrade.tif", 420);
        var store = new CatalogStore(db.DataSource);

        var ingest = await Run("ingest", scene, "--model", modelA, "--device", "cpu", "--no-captions", "--db", cs);
        Assert.True(ingest.Code == 0, ingest.Err);
        var sceneA = await UpgradeModels.ShownSceneAsync(store, scene, modelA);
        var activateA = await Run("models", "activate", "tiny-test", "--db", cs);   // the only model of that name so far
        Assert.True(activateA.Code == 0, activateA.Err);
        Assert.Contains("activated tiny-test@1", activateA.Out);
        Assert.Equal(sceneA, await CliSearchSceneAsync());   // no --model: the activated model

        // A web host that follows the activated model (serve without --model); its fallback folder does not matter here.
        var port = LoopbackPorts.Free();
        var app = RsCapRetWebHost.Build(cs, $"http://127.0.0.1:{port}", modelA, jobs: WebHostJobs.Dashboard, followActivatedModel: true);
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
            var api = await ApiSearchAsync(http);
            Assert.True(api.Status == HttpStatusCode.OK, api.Body);
            Assert.Equal(sceneA, api.Scene);

            // Re-encode the archive with B in this process; searches keep using A meanwhile and after.
            var reindex = await Run("reindex", "--model", modelB, "--wait", "--device", "cpu", "--db", cs);
            Assert.True(reindex.Code == 0, reindex.Out + reindex.Err);
            Assert.Contains("1 of 1 current archive paths need a version with it", reindex.Out);
            Assert.True(reindex.Out.Contains("upgrade.tif: ingested, 4 tiles"), reindex.Out);
            Assert.Contains("reindexed 1 of 1 paths with tiny-test@2", reindex.Out);
            var sceneB = await UpgradeModels.ShownSceneAsync(store, scene, modelB);
            Assert.NotEqual(sceneA, sceneB);
            Assert.Equal(sceneA, await CliSearchSceneAsync());
            Assert.Equal(sceneA, (await ApiSearchAsync(http)).Scene);
            // B's version has the plan of A's (no captions), so it stores no captions either.
            Assert.Contains("\"captions\":false", (await store.FindScenesAsync(sceneB.ToString(System.Globalization.CultureInfo.InvariantCulture))).Single().Plan!.Replace(" ", ""));

            // Nothing left to do for B.
            var again = await Run("reindex", "--model", modelB, "--db", cs);
            Assert.True(again.Code == 0, again.Err);
            Assert.Contains("0 of 1 current archive paths need a version with it", again.Out);

            var listed = await Run("models", "list", "--format", "json", "--db", cs);
            Assert.True(listed.Code == 0, listed.Err);
            using (var list = JsonDocument.Parse(listed.Out))
            {
                var (a, b) = (ModelOf(list, "1"), ModelOf(list, "2"));
                Assert.True(a.GetProperty("active").GetBoolean());
                Assert.False(b.GetProperty("active").GetBoolean());
                Assert.Equal(1, b.GetProperty("paths").GetInt32());
                Assert.Equal(1, b.GetProperty("total_paths").GetInt32());
                Assert.Equal(1.0, b.GetProperty("share").GetDouble());
                Assert.Equal(4, b.GetProperty("tiles").GetInt64());   // the tiny model's 32-px tiles: 2 x 2 of the 64-px scene
                Assert.Equal(modelB, b.GetProperty("folder").GetString());
            }
            var table = await Run("models", "list", "--db", cs);
            Assert.Contains("tiny-test@2", table.Out);
            Assert.Contains("100.0 %", table.Out);

            // Names that do not pick one model are errors listing the choices.
            var ambiguous = await Run("models", "activate", "tiny-test", "--db", cs);
            Assert.Equal(2, ambiguous.Code);
            Assert.Contains("tiny-test@1", ambiguous.Err);
            Assert.Contains("tiny-test@2", ambiguous.Err);
            var unknown = await Run("models", "activate", "no-such-model", "--db", cs);
            Assert.Equal(2, unknown.Code);
            Assert.Contains("no model 'no-such-model'", unknown.Err);
            Assert.Contains("tiny-test@2", unknown.Err);

            var activateB = await Run("models", "activate", "tiny-test@2", "--db", cs);
            Assert.True(activateB.Code == 0, activateB.Err);
            Assert.Equal("", activateB.Err);   // B covers the whole archive: no warning
            Assert.Equal(sceneB, await CliSearchSceneAsync());
            Assert.Equal(sceneA, await CliSearchSceneAsync("--model", modelA));   // --model pins a process to its model
            var switched = await ApiUntilAsync(http, a => a.Scene == sceneB);
            Assert.True(switched.Scene == sceneB, $"the host still answers {switched.Status} {switched.Body}");

            // The activated model's folder gone from this machine: a clear error naming the model (CLI: exit 2; API: 503).
            Directory.Move(modelB, modelB + ".away");
            try
            {
                var missing = await Run("search", "a farm", "--device", "cpu", "--db", cs);
                Assert.Equal(2, missing.Code);
                Assert.Contains("tiny-test@2", missing.Err);
                Assert.Contains("not available", missing.Err);
                var unavailable = await ApiUntilAsync(http, a => a.Status != HttpStatusCode.OK);
                Assert.Equal(HttpStatusCode.ServiceUnavailable, unavailable.Status);
                Assert.Contains("tiny-test@2", unavailable.Body);
                Assert.Contains("not available", unavailable.Body);
                Assert.DoesNotContain(_dir.FullName, unavailable.Body);   // the folder is the server's business
            }
            finally { Directory.Move(modelB + ".away", modelB); }
            var back = await ApiUntilAsync(http, a => a.Status == HttpStatusCode.OK);
            Assert.Equal(sceneB, back.Scene);
        }
        finally { await app.StopAsync(); }
    }
}

/// <summary>`reindex --activate-when-done` without --wait: workers ingest, and a self-rescheduling job activates the model once complete.</summary>
public sealed class ModelUpgradeJobTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-upgrade-jobs-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task QueuedReindexActivatesTheModelWhenEveryPathHasAVersionAndShowsProgress()
    {
        var cs = db.ConnectionString;
        var (modelA, modelB) = UpgradeModels.Create(_dir.FullName);
        var scene = TestScenes.SmallScene(_dir.FullName, "queued.tif", 480);
        var store = new CatalogStore(db.DataSource);
        var ingest = await Run("ingest", scene, "--model", modelA, "--device", "cpu", "--no-captions", "--db", cs);
        Assert.True(ingest.Code == 0, ingest.Err);

        var reindex = await Run("reindex", "--model", modelB, "--activate-when-done", "--db", cs);
        Assert.True(reindex.Code == 0, reindex.Err);
        Assert.Contains("queued 1 ingest job ", reindex.Out);
        Assert.Contains("activates tiny-test@2 once every current path has a complete version with it", reindex.Out);
        var idB = await store.RegisterModelAsync(RsCapRetTileEncoder.IdentityOf(modelB));
        Assert.Null(await store.ActiveModelAsync());   // queued, not run: nothing switched yet

        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddSingleton(new ModelCache("cpu"));
        builder.Services.AddRsCapRetJobs(cs).AddRsCapRetWorker(JobQueues.All, 1, "upgrade-test-worker");
        using var host = builder.Build();
        await host.StartAsync();
        try
        {
            // The activation job may run before the ingest job: then it schedules itself again (30 s later).
            var deadline = DateTime.UtcNow.AddSeconds(150);
            while (DateTime.UtcNow < deadline && (await store.ActiveModelAsync())?.Id != idB) await Task.Delay(500);
            Assert.Equal(idB, (await store.ActiveModelAsync())?.Id);
            Assert.True(await UpgradeModels.ShownSceneAsync(store, scene, modelB) > 0);

            // The job that activated it left its progress (paths done of the archive's) where the dashboard reads it.
            var storage = host.Services.GetRequiredService<JobStorage>();
            var monitor = storage.GetMonitoringApi();
            KeyValuePair<string, Hangfire.Storage.Monitoring.SucceededJobDto> activation = default;
            var jobDeadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < jobDeadline)
            {
                activation = monitor.SucceededJobs(0, 50).FirstOrDefault(j => j.Value.Job?.Type == typeof(ActivateWhenReindexedJob)
                    && j.Value.Result?.ToString()?.Contains("activated tiny-test@2") == true);
                if (activation.Key is not null) break;
                await Task.Delay(250);
            }
            Assert.NotNull(activation.Key);
            using var connection = storage.GetConnection();
            var progress = JobProgress.Read(connection, activation.Key);
            Assert.NotNull(progress);
            Assert.Equal("paths", progress.Unit);
            Assert.Equal((1L, 1L), (progress.Done, progress.Total));
            Assert.Contains("activated", progress.Text);
        }
        finally { await host.StopAsync(); }
    }
}

/// <summary>The host's query batcher while the serving model switches: vectors, model ids and cached entries stay per model.</summary>
public sealed class QueryVectorModelSwitchTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-query-switch-");
    public void Dispose() => _dir.Delete(true);

    [Fact]
    public async Task ASwitchOfTheServingModelNeverAnswersWithTheOldModelsVector()
    {
        var a = Path.GetFullPath(TinyModelFolder.Create(Path.Combine(_dir.FullName, "a")));
        var b = Path.GetFullPath(TinyModelFolder.Create(Path.Combine(_dir.FullName, "b"), seed: 99));   // other heads, other vectors
        using var models = new ModelCache("cpu");
        var serving = a;
        await using var batcher = new QueryVectorBatcher(models, _ => ValueTask.FromResult(serving),
            encoder => Task.FromResult(encoder.Directory == a ? 1 : 2), new QueryVectorOptions { CacheEntries = 100 });

        var fromA = await batcher.EmbedAsync("a farm", CancellationToken.None);
        Assert.Equal(1, fromA.ModelId);
        Assert.Equal(models.Get(a).EmbedText("a farm"), fromA.Vector);
        serving = b;   // activated: the cached vector of A is not B's
        var fromB = await batcher.EmbedAsync("a farm", CancellationToken.None);
        Assert.Equal(2, fromB.ModelId);
        Assert.Equal(models.Get(b).EmbedText("a farm"), fromB.Vector);
        Assert.NotEqual(fromA.Vector, fromB.Vector);
        serving = a;   // and back: A's entry answers again, with A's id, without a forward pass
        var passes = batcher.Batches;
        var again = await batcher.EmbedAsync("a farm", CancellationToken.None);
        Assert.Equal((1, fromA.Vector), (again.ModelId, again.Vector));
        Assert.Equal(passes, batcher.Batches);
    }
}
