using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Hangfire.States;
using RsCapRet.Cli.Commands;
using RsCapRet.Jobs;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// `rscapret demo` ingests through Hangfire jobs run by a worker in its own process (tiny model, scenes of a test
/// folder via --scenes): a failing scene's job is reported without losing the others, and Ctrl-C deletes the demo's
/// unfinished jobs, stops its worker and releases the scene it was on. The bundled scenes with the default model are
/// covered by <see cref="DemoModelTests"/>.
/// </summary>
public sealed partial class DemoJobsTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-demo-jobs-");
    private readonly List<Process> _processes = [];
    private string? _model;

    public void Dispose()
    {
        foreach (var p in _processes)
        {
            try { if (!p.HasExited) p.Kill(entireProcessTree: true); p.WaitForExit(10_000); }
            catch (InvalidOperationException) { }
        }
        _dir.Delete(true);
    }

    private string Model => _model ??= TinyModelFolder.Create(Path.Combine(_dir.FullName, "model"));

    private Hangfire.Storage.IMonitoringApi Monitor => HangfireSetup.CreateStorage(db.ConnectionString).GetMonitoringApi();

    private async Task<T?> Scalar<T>(string sql, params object[] args)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    private void AssertNoDemoServerLeft() =>
        Assert.DoesNotContain(Monitor.Servers(), s => s.Name.StartsWith(RsCapRet.Jobs.InProcessWorker.ServerNamePrefix, StringComparison.OrdinalIgnoreCase));

    [Fact]
    public async Task AFailedSceneJobIsReportedTheOtherScenesAreIngestedAndTheDemoExitsNonZero()
    {
        var scenes = Directory.CreateDirectory(Path.Combine(_dir.FullName, "scenes-with-a-broken-one")).FullName;
        var good = TestScenes.SmallScene(scenes, "a.tif", 0);
        await File.WriteAllBytesAsync(Path.Combine(scenes, "0-broken.tif"), (await File.ReadAllBytesAsync(good))[..400]);   // fails first
        var (output, error) = (new StringWriter(), new StringWriter());

        var code = await CliApp.RunAsync(["demo", "--scenes", scenes, "--model", Model, "--device", "cpu", "--db", db.ConnectionString], output, error);

        var (text, errors) = (output.ToString(), error.ToString());
        Assert.True(code == CommandAction.UserError, $"exit code {code}\n{text}\n{errors}");
        Assert.Matches(@"error: 0-broken\.tif: ingest job \d+ failed: .*0-broken\.tif", errors);
        Assert.Matches(@"error: 1 of 2 scenes were not ingested \(0-broken\.tif: job \d+\)", errors);
        Assert.Contains("a.tif: ingested, 4 tiles (0 skipped)", text);   // 2 x 2 tiles of the tiny model's 32 px
        Assert.Contains($"== search: \"{DemoCommands.DemoQueries[0]}\" (top 3)", text);
        Assert.Contains(Monitor.FailedJobs(0, 20), j => j.Value.Job?.Type == typeof(IngestSceneJob) && j.Value.ExceptionMessage.Contains("0-broken.tif"));
        Assert.Equal("done", await Scalar<string>("SELECT status FROM scenes WHERE path = $1", good));
        AssertNoDemoServerLeft();
    }

    [Fact]
    public async Task CtrlCDeletesTheDemosUnfinishedJobsStopsItsWorkerAndReleasesTheScene()
    {
        var scenes = Directory.CreateDirectory(Path.Combine(_dir.FullName, "scenes-interrupted")).FullName;
        var big = TestScenes.Cut(Path.Combine(scenes, "a-big.tif"), 1600, 0);   // 50 x 50 tiles of 32 px: seconds of work
        TestScenes.SmallScene(scenes, "b-small.tif", 100);
        // SIGINT reset to its default first (env --default-signal): a child of a background job inherits it ignored.
        var psi = new ProcessStartInfo("env", ["--default-signal=INT", Path.Combine(AppContext.BaseDirectory, "rscapret"),
            "demo", "--scenes", scenes, "--model", Model, "--device", "cpu", "--db", db.ConnectionString])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        var (stdout, stderr) = (new System.Text.StringBuilder(), new System.Text.StringBuilder());
        var demo = Process.Start(psi) ?? throw new InvalidOperationException("could not start rscapret demo");
        _processes.Add(demo);
        demo.OutputDataReceived += (_, e) => { if (e.Data != null) lock (stdout) stdout.AppendLine(e.Data); };
        demo.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (stdout) stderr.AppendLine(e.Data); };
        demo.BeginOutputReadLine();
        demo.BeginErrorReadLine();
        string Text() { lock (stdout) return stdout + "\n" + stderr; }

        // Mid-scene: the first job has stored partial progress.
        var storage = HangfireSetup.CreateStorage(db.ConnectionString);
        string[]? ids = null;
        var deadline = DateTime.UtcNow.AddSeconds(180);
        while (true)
        {
            if (demo.HasExited || DateTime.UtcNow > deadline) throw new TimeoutException($"the demo's first job never got into its scene\n{Text()}");
            ids ??= QueuedJobs().Match(Text()) is { Success: true } m ? m.Groups[1].Value.Split(", ") : null;
            if (ids is not null)
            {
                using var connection = storage.GetConnection();
                if (JobProgress.Read(connection, ids[0]) is { Done: > 0 } p && p.Done < p.Total) break;
            }
            await Task.Delay(100);
        }
        Assert.Equal(2, ids.Length);

        Assert.Equal(0, SendSignal(demo.Id, 2));
        using (var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            try { await demo.WaitForExitAsync(cts.Token); }
            catch (OperationCanceledException) { throw new TimeoutException($"the demo still ran 30 s after SIGINT\n{Text()}"); }
        }
        demo.WaitForExit();

        Assert.True(demo.ExitCode == 130, $"exit code {demo.ExitCode}\n{Text()}");
        Assert.Contains("error: cancelled (SIGINT)", Text());
        foreach (var id in ids)
        {
            var state = Monitor.JobDetails(id).History[0];
            Assert.True(state.StateName == DeletedState.StateName, $"job {id}: {state.StateName}\n{Text()}");
            Assert.Equal("the demo was cancelled", state.Reason);
        }
        AssertNoDemoServerLeft();
        Assert.Equal("failed", await Scalar<string>("SELECT status FROM scenes WHERE path = $1", big));   // released, with the reason
        Assert.Equal("cancelled", await Scalar<string>("SELECT error FROM scenes WHERE path = $1", big));

        // Nothing of the interrupted run stands in the way of the next one.
        var (output, error) = (new StringWriter(), new StringWriter());
        var code = await CliApp.RunAsync(["demo", "--scenes", scenes, "--model", Model, "--device", "cpu", "--db", db.ConnectionString], output, error);
        Assert.True(code == 0, $"exit code {code}\n{output}\n{error}");
        Assert.Contains("a-big.tif: ingested, 2500 tiles", output.ToString());
        Assert.Contains("b-small.tif: ingested, 4 tiles", output.ToString());
    }

    [GeneratedRegex(@"queued ingest jobs ([\d, ]+);")]
    private static partial Regex QueuedJobs();

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);
}
