using System.Diagnostics;
using Hangfire;
using Hangfire.States;
using Hangfire.Storage;
using RsCapRet.Core;
using RsCapRet.Jobs;
using RsCapRet.Raster;
using RsCapRet.TestSupport;

namespace RsCapRet.Jobs.Tests;

/// <summary>
/// Worker processes (the real `rscapret worker` binary) on the live database: one killed in the middle of a scene,
/// and two sharing an archive. Leases and Hangfire's invisibility timeout are shortened through the environment so
/// recovery takes seconds rather than minutes.
/// </summary>
public sealed class WorkerFaultTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-faults-");
    private readonly List<Process> _workers = [];

    public void Dispose()
    {
        foreach (var w in _workers) Kill(w);
        _dir.Delete(true);
    }

    private static void Kill(Process p)
    {
        try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.WaitForExit(10_000); }
        catch (InvalidOperationException) { }
    }

    private Process StartWorker(string name)
    {
        var psi = new ProcessStartInfo(Path.Combine(AppContext.BaseDirectory, "rscapret"), ["worker", "--queues", "model,default", "--workers", "1"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["RSCAPRET_DB"] = db.ConnectionString;
        psi.Environment["RSCAPRET_DEVICE"] = "cpu";
        psi.Environment["RSCAPRET_JOB_INVISIBILITY_SECONDS"] = "4";
        psi.Environment["RSCAPRET_SCENE_LEASE_SECONDS"] = "3";
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start rscapret worker");
        var log = Path.Combine(_dir.FullName, name + ".log");
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_workers) File.AppendAllText(log, e.Data + "\n"); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_workers) File.AppendAllText(log, e.Data + "\n"); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _workers.Add(p);
        return p;
    }

    private string Logs() => string.Join("\n", _dir.GetFiles("*.log").Select(f => $"--- {f.Name}\n{File.ReadAllText(f.FullName)}"));

    private async Task<T> Scalar<T>(string sql, params object[] args)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        return (T)(await cmd.ExecuteScalarAsync())!;
    }

    private static async Task WaitFor(Func<Task<bool>> condition, TimeSpan timeout, Func<string> describe)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException(describe());
            await Task.Delay(250);
        }
    }

    [Fact]
    public async Task AWorkerKilledMidSceneIsTakenOverAndTheSceneEndsWithExactlyItsTiles()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "big.tif"), 1600, 0);   // 50 x 50 tiles of 32 px: seconds of work
        var storage = HangfireSetup.CreateStorage(db.ConnectionString);
        var jobId = new BackgroundJobClient(storage).Enqueue<IngestSceneJob>(j => j.RunAsync(scene, model, null, null, CancellationToken.None));

        var first = StartWorker("worker-1");
        ProgressValue? progress = null;
        await WaitFor(async () =>
        {
            using var connection = storage.GetConnection();
            progress = JobProgress.Read(new Dictionary<string, string> { [JobProgress.Parameter] = connection.GetJobParameter(jobId, JobProgress.Parameter) });
            return progress is { Done: > 0 } p && p.Done < p.Total;
        }, TimeSpan.FromSeconds(120), () => $"the first worker never reported partial progress\n{Logs()}");
        Kill(first);   // mid-scene: its transaction dies with the process
        Assert.True(progress!.Done < progress.Total);
        Assert.Equal("ingesting", await Scalar<string>("SELECT status FROM scenes WHERE path = $1", scene));
        Assert.Equal(0L, await Scalar<long>("SELECT count(*) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));

        StartWorker("worker-2");
        await WaitFor(async () => await Scalar<string>("SELECT status FROM scenes WHERE path = $1", scene) == "done",
            TimeSpan.FromSeconds(180), () => $"the scene was not completed after the restart\n{Logs()}");
        await WaitFor(() => Task.FromResult(storage.GetMonitoringApi().JobDetails(jobId).History[0].StateName == SucceededState.StateName),
            TimeSpan.FromSeconds(30), () => $"job {jobId} did not succeed\n{Logs()}");

        var expected = progress.Total - await Scalar<int>("SELECT skipped_tiles FROM scenes WHERE path = $1", scene);
        Assert.Equal((long)expected, await Scalar<long>("SELECT count(*) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));
        Assert.Equal((long)expected, await Scalar<long>("SELECT count(DISTINCT (grid_row, grid_col)) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));
        Assert.Equal(1L, await Scalar<long>("SELECT count(*) FROM scenes WHERE path = $1", scene));
    }

    [Fact]
    public async Task TwoWorkersOnOneArchiveIngestEverySceneOnce()
    {
        var model = TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));
        var archive = Directory.CreateDirectory(Path.Combine(_dir.FullName, "archive")).FullName;
        var scenes = Enumerable.Range(0, 4).Select(i => TestScenes.Cut(Path.Combine(archive, $"s{i}.tif"), 320, 40 * (i + 1))).ToList();
        var storage = HangfireSetup.CreateStorage(db.ConnectionString);
        StartWorker("worker-a");
        StartWorker("worker-b");
        // Both workers scan the same archive (say, a schedule and an operator at once): every scene is queued twice.
        var client = new BackgroundJobClient(storage);
        client.Enqueue<IndexArchiveJob>(j => j.RunAsync(archive, "*.tif", model, null, CancellationToken.None));
        client.Enqueue<IndexArchiveJob>(j => j.RunAsync(archive, "*.tif", model, null, CancellationToken.None));

        var monitor = storage.GetMonitoringApi();
        await WaitFor(async () =>
            await Scalar<long>("SELECT count(*) FROM scenes WHERE status = 'done'") == scenes.Count
            && monitor.EnqueuedCount("model") == 0 && monitor.ProcessingCount() == 0 && monitor.ScheduledCount() == 0,
            TimeSpan.FromSeconds(240), () => $"scenes or jobs still pending\n{Logs()}");

        Assert.Equal((long)scenes.Count, await Scalar<long>("SELECT count(*) FROM scenes"));
        var results = monitor.SucceededJobs(0, 100).Where(j => j.Value.Job?.Type == typeof(IngestSceneJob)).Select(j => j.Value.Result?.ToString() ?? "").ToList();
        // Each scene ingested by one job; its twin found it current ("unchanged: already ingested").
        Assert.True(scenes.Count == results.Count(r => r.Contains("added: ingested", StringComparison.Ordinal)), string.Join("\n", results));
        foreach (var s in scenes)
        {
            var n = await Scalar<long>("SELECT count(*) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", s);
            Assert.Equal(100L, n);   // 10 x 10 tiles of 32 px, none skipped
            Assert.Equal(n, await Scalar<long>("SELECT count(DISTINCT (grid_row, grid_col)) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", s));
        }
    }
}
