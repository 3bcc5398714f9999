using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using RsCapRet.TestSupport;

namespace RsCapRet.Cli.Tests;

/// <summary>
/// A direct `rscapret ingest` (the real binary) owns its scene's claim, recorded with its process: killed (or left
/// holding it because its database stayed down), a re-run on the same machine sees the process is gone and takes the
/// scene at once; a holder on another machine is waited for (--wait, else an error naming the lease) only until the
/// claim has gone unrenewed for the waiter's own lease (RSCAPRET_SCENE_LEASE_SECONDS), without using up scene ids;
/// interrupted (SIGINT, SIGTERM) or failing because its database restarted, it releases the scene with the reason, and
/// a re-run takes it at once.
/// </summary>
public sealed partial class IngestClaimTests(TestDatabase db) : IClassFixture<TestDatabase>, IDisposable
{
    /// <summary>30 x 30 tiles of the tiny model's 32 px: seconds of work, in batches of 4 so it can be interrupted.</summary>
    private const int SceneSize = 960;

    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-claims-");
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

    private sealed record Run(Process Process, System.Text.StringBuilder Output, System.Text.StringBuilder Error)
    {
        public string Text { get { lock (Output) return Output + "\n" + Error; } }
    }

    /// <summary>
    /// Starts `rscapret ingest SCENE ...`; SIGINT is reset to its default first (env --default-signal), since a child
    /// of a background job inherits it ignored.
    /// </summary>
    private Run Start(string scene, IReadOnlyDictionary<string, string>? environment = null, params string[] extra)
    {
        var psi = new ProcessStartInfo("env", ["--default-signal=INT", Path.Combine(AppContext.BaseDirectory, "rscapret"),
            "ingest", scene, "--model", Model, "--device", "cpu", "--batch", "4", .. extra])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        psi.Environment["RSCAPRET_DB"] = db.ConnectionString;
        psi.Environment.Remove("RSCAPRET_SCENE_LEASE_SECONDS");
        foreach (var (k, v) in environment ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        var p = Process.Start(psi) ?? throw new InvalidOperationException("could not start rscapret ingest");
        var run = new Run(p, new(), new());
        p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (run.Output) run.Output.AppendLine(e.Data); };
        p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (run.Output) run.Error.AppendLine(e.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        _processes.Add(p);
        return run;
    }

    private static async Task<Run> Finished(Run run, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try { await run.Process.WaitForExitAsync(cts.Token); }
        catch (OperationCanceledException) { throw new TimeoutException($"rscapret ingest still running after {timeout}\n{run.Text}"); }
        run.Process.WaitForExit();   // the output's last lines
        return run;
    }

    private Task<Run> RunToEnd(string scene, IReadOnlyDictionary<string, string>? environment = null, params string[] extra) =>
        Finished(Start(scene, environment, extra), TimeSpan.FromSeconds(240));

    /// <summary>Until the run has claimed its scene and is writing its tiles (and has not finished them).</summary>
    private async Task MidScene(Run run, string scene)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(120);
        while (!(run.Text.Contains("tiles of") && await Status(scene) == "ingesting"))
        {
            if (run.Process.HasExited || DateTime.UtcNow > deadline) throw new TimeoutException($"the run never got into its scene\n{run.Text}");
            await Task.Delay(100);
        }
        // A second of its work into the scene (CPU time, which a loaded machine does not cut short).
        await ProcessWork.UntilBusyForAsync(run.Process, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(120), () => run.Text);
        Assert.False(run.Process.HasExited, $"the scene was done before it could be interrupted\n{run.Text}");
    }

    private async Task<T?> Scalar<T>(string sql, params object[] args)
    {
        await using var cmd = db.DataSource.CreateCommand(sql);
        foreach (var a in args) cmd.Parameters.Add(new() { Value = a });
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull or null ? default : (T)value;
    }

    private Task<string?> Status(string scene) => Scalar<string>("SELECT status FROM scenes WHERE path = $1", scene);

    private async Task AssertCompletelyIngested(string scene)
    {
        Assert.Equal("done", await Status(scene));
        var expected = (SceneSize / 32) * (SceneSize / 32) - await Scalar<int>("SELECT skipped_tiles FROM scenes WHERE path = $1", scene);
        Assert.Equal((long)expected, await Scalar<long>("SELECT count(*) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));
        Assert.Equal((long)expected, await Scalar<long>("SELECT count(DISTINCT (grid_row, grid_col)) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int SendSignal(int pid, int signal);

    [GeneratedRegex(@"lease lapses in (\d+) s")]
    private static partial Regex LeaseLapsesIn();

    private Task<long> SceneIdsTaken() => Scalar<long>("SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('scenes', 'id')), 0)");

    [Fact]
    public async Task AKilledIngestIsTakenOverAtOnceByARerunOnTheSameMachine()
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "killed.tif"), SceneSize, 0);
        var killed = Start(scene);   // the default ten-minute lease
        await MidScene(killed, scene);
        var pid = killed.Process.Id;
        killed.Process.Kill();   // SIGKILL: no chance to release anything
        await killed.Process.WaitForExitAsync();
        Assert.Equal("ingesting", await Status(scene));
        Assert.Equal(pid, await Scalar<int>("SELECT claim_pid FROM scenes WHERE path = $1", scene));

        // The holder ran on this machine and is gone: the re-run takes the scene at once, no --wait, no lease to wait out.
        var sw = Stopwatch.StartNew();
        var rerun = await RunToEnd(scene);
        Assert.True(rerun.Process.ExitCode == 0, rerun.Text);
        Assert.Contains($"taken over from process {pid} on {Environment.MachineName}, which is gone", rerun.Text);
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2), $"took {sw.Elapsed}");
        await AssertCompletelyIngested(scene);
    }

    [Fact]
    public async Task AHolderOnAnotherMachineIsWaitedForOnlyForTheWaitersLeaseAndWaitingTakesNoSceneIds()
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "elsewhere.tif"), SceneSize, 20);
        var killed = Start(scene);   // the default ten-minute lease, renewed every 10 s
        await MidScene(killed, scene);
        killed.Process.Kill();
        await killed.Process.WaitForExitAsync();
        // As if it had run on another machine: whether it still runs cannot be told from here.
        await Scalar<object>("UPDATE scenes SET claim_host = 'another-host' WHERE path = $1 AND status = 'ingesting'", scene);

        // Held: said so on stderr, lapsing within the re-run's own lease (30 s), not the holder's ten minutes.
        var lease = new Dictionary<string, string> { ["RSCAPRET_SCENE_LEASE_SECONDS"] = "30" };
        var rerun = await RunToEnd(scene, lease);
        Assert.Equal(2, rerun.Process.ExitCode);
        var line = Assert.Single(rerun.Error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: {scene}: scene ", line);
        Assert.Contains("is being ingested by another process", line);
        Assert.Contains("--wait", line);
        Assert.InRange(int.Parse(LeaseLapsesIn().Match(line).Groups[1].Value), 1, 30);

        // --wait polls every second without taking scene ids, and takes the scene over once it has gone 30 s unrenewed.
        var ids = await SceneIdsTaken();
        var sw = Stopwatch.StartNew();
        var waited = await RunToEnd(scene, lease, "--wait");
        Assert.True(waited.Process.ExitCode == 0, waited.Text);
        Assert.Contains("waiting for it to finish or for its lease to lapse", waited.Text);
        Assert.Contains("taken over from process", waited.Text);
        // 30 s unrenewed plus the ingest; the holder's own lease would be ten minutes: five is generous on a loaded machine.
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(5), $"--wait took {sw.Elapsed}");
        Assert.Equal(ids, await SceneIdsTaken());
        await AssertCompletelyIngested(scene);
    }

    [Fact]
    public async Task AnIngestWhoseDatabaseStaysDownUntilItExitsLeavesItsSceneToTheNextRunAtOnce()
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "down.tif"), SceneSize, 60);
        var named = new Dictionary<string, string> { ["RSCAPRET_DB"] = db.ConnectionString + ";Application Name=rscapret-down" };
        var run = Start(scene, named);
        await MidScene(run, scene);
        // PostgreSQL "stopped" mid-COPY for longer than the run retries recording its failure: the claim stays.
        var database = new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString).Database;
        await using (var admin = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString))
        {
            await admin.OpenAsync();
            async Task Exec(string sql) { await using var cmd = new Npgsql.NpgsqlCommand(sql, admin); await cmd.ExecuteNonQueryAsync(); }
            try
            {
                await Exec($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
                await Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rscapret-down'");
                await Finished(run, TimeSpan.FromSeconds(90));
            }
            finally { await Exec($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"); }
        }
        Assert.Equal(2, run.Process.ExitCode);
        Assert.Equal("ingesting", await Status(scene));   // nobody could record anything

        var sw = Stopwatch.StartNew();
        var rerun = await RunToEnd(scene);
        Assert.True(rerun.Process.ExitCode == 0, rerun.Text);
        Assert.Contains("which is gone", rerun.Text);
        Assert.True(sw.Elapsed < TimeSpan.FromMinutes(2), $"took {sw.Elapsed}");
        await AssertCompletelyIngested(scene);
    }

    [Theory]
    [InlineData("SIGINT", 2, 130, 40)]
    [InlineData("SIGTERM", 15, 143, 120)]
    public async Task AnInterruptedIngestReleasesItsSceneWithTheReasonAndARerunTakesItAtOnce(string signal, int number, int exitCode, int offset)
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, $"interrupted-{signal}.tif"), SceneSize, offset);
        var interrupted = Start(scene);   // the default ten-minute lease: only a release lets the re-run in
        await MidScene(interrupted, scene);
        Assert.Equal(0, SendSignal(interrupted.Process.Id, number));
        await Finished(interrupted, TimeSpan.FromSeconds(20));

        Assert.Equal(exitCode, interrupted.Process.ExitCode);
        Assert.Equal($"error: {scene}: cancelled ({signal})", interrupted.Error.ToString().Trim());
        Assert.Equal("failed", await Status(scene));
        Assert.Equal($"cancelled ({signal})", await Scalar<string>("SELECT error FROM scenes WHERE path = $1", scene));
        Assert.Equal(0L, await Scalar<long>("SELECT count(*) FROM tiles t JOIN scenes s ON s.id = t.scene_id WHERE s.path = $1", scene));

        var rerun = await RunToEnd(scene);
        Assert.True(rerun.Process.ExitCode == 0, rerun.Text);
        await AssertCompletelyIngested(scene);
    }

    [Fact]
    public async Task AnIngestWhoseDatabaseRestartsFailsItsSceneInsteadOfHoldingIt()
    {
        var scene = TestScenes.Cut(Path.Combine(_dir.FullName, "restarted.tif"), SceneSize, 80);
        // Its own application name, so that only its connections are dropped, as a restart drops them all.
        var named = new Dictionary<string, string> { ["RSCAPRET_DB"] = db.ConnectionString + ";Application Name=rscapret-restarted" };
        var run = Start(scene, named);
        await MidScene(run, scene);

        // The "restart": its connections dropped, and for three seconds no new ones, so its first attempts to record
        // the failure find the database down.
        var database = new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString).Database;
        // From another database: PostgreSQL does not let a session lock out its own.
        await using (var admin = new Npgsql.NpgsqlConnection(new Npgsql.NpgsqlConnectionStringBuilder(db.ConnectionString) { Database = "postgres", Pooling = false }.ConnectionString))
        {
            await admin.OpenAsync();
            async Task Exec(string sql) { await using var cmd = new Npgsql.NpgsqlCommand(sql, admin); await cmd.ExecuteNonQueryAsync(); }
            try
            {
                await Exec($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false");
                await Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rscapret-restarted'");
                await Task.Delay(TimeSpan.FromSeconds(3));
            }
            finally { await Exec($"ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"); }
        }
        await Finished(run, TimeSpan.FromSeconds(60));

        Assert.Equal("failed", await Status(scene));   // released, not left 'ingesting' for ten minutes
        Assert.Equal(2, run.Process.ExitCode);
        var line = Assert.Single(run.Error.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"error: {scene}: database: ", line);

        var rerun = await RunToEnd(scene);
        Assert.True(rerun.Process.ExitCode == 0, rerun.Text);
        await AssertCompletelyIngested(scene);
    }
}
