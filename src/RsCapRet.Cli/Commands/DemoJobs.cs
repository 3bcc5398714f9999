using Hangfire;
using Hangfire.States;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// The demo's ingestion as Hangfire jobs: one ingest-scene job per scene (the job `rscapret worker` runs), worked by a
/// Hangfire server in this process on the same storage and queues as `rscapret worker`, so the dashboard shows the
/// demo's work while it runs and keeps the succeeded jobs after. A worker elsewhere on the same queues may take some of
/// the jobs; the demo waits for them either way. The server stops when the demo's jobs have ended.
/// </summary>
public static class DemoJobs
{
    /// <summary>One scene and the tiling its job uses.</summary>
    public sealed record SceneJob(string Path, IngestJobOptions Options);

    /// <summary>How a scene's job ended: its report when it succeeded (null if the worker stored none), else why it did not.</summary>
    public sealed record Outcome(string Path, string JobId, bool Succeeded, IngestJobReport? Report, string? Failure);

    /// <summary>The demo's Hangfire server is named "demo:MACHINE:PID" on the dashboard's Servers page.</summary>
    public const string ServerNamePrefix = "demo:";

    private static readonly TimeSpan Poll = TimeSpan.FromMilliseconds(500);
    private static readonly string[] Unfinished = [EnqueuedState.StateName, ScheduledState.StateName, ProcessingState.StateName, AwaitingState.StateName];

    /// <summary>
    /// Queues the scenes' jobs, runs a worker for them and prints each scene's result in order as its job ends (what
    /// the demo printed when it ingested in-process). A failed job is reported on <paramref name="error"/> and the
    /// others go on. Cancelled, it deletes its jobs that have not ended and stops the worker, which cancels the
    /// running one (its scene is released for the next run).
    /// </summary>
    public static async Task<IReadOnlyList<Outcome>> IngestAsync(string connectionString, string modelDirectory, ModelCache models,
        IReadOnlyList<SceneJob> scenes, TextWriter output, TextWriter error, TextWriter? terminal, CancellationToken ct)
    {
        using var host = BuildWorkerHost(connectionString, models);
        var client = host.Services.GetRequiredService<IBackgroundJobClient>();
        var storage = host.Services.GetRequiredService<JobStorage>();
        var jobs = new List<(string Path, string Id)>();
        foreach (var s in scenes)
            jobs.Add((s.Path, client.Enqueue<IngestSceneJob>(j => j.RunAsync(s.Path, modelDirectory, s.Options, null, CancellationToken.None))));
        await output.WriteLineAsync($"queued ingest jobs {string.Join(", ", jobs.Select(j => j.Id))}; a worker in this process runs them " +
                                    "(./rscapret serve shows them at /hangfire)");
        var outcomes = new List<Outcome>();
        try
        {
            await host.StartAsync(ct);
            foreach (var (path, id) in jobs)
            {
                var bar = new ConsoleProgress(output, terminal, "  ");
                var outcome = await WaitAsync(storage, path, id, bar, error, ct);
                outcomes.Add(outcome);
                await PrintAsync(outcome, bar, output, error);
            }
        }
        catch (Exception e)
        {
            // Stopped (Ctrl-C, SIGTERM) or broken off: no later worker should run what this demo no longer waits for.
            DeleteUnfinished(storage, client, jobs.Skip(outcomes.Count).Select(j => j.Id),
                ct.IsCancellationRequested ? "the demo was cancelled" : $"the demo stopped: {e.Message}");
            throw;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
        return outcomes;
    }

    /// <summary>
    /// `index-archive FOLDER --wait`: queues the scan, runs a worker in this process until the scan and the ingest jobs
    /// it queued have ended, and prints per file what was decided (added, changed, removed, moved, unchanged, failed
    /// with why). Returns how many files failed.
    /// </summary>
    public static async Task<int> IndexArchiveAsync(string connectionString, string modelDirectory, ModelCache models, string root, string pattern,
        IngestJobOptions options, TextWriter output, TextWriter error, TextWriter? terminal, CancellationToken ct)
    {
        using var host = BuildWorkerHost(connectionString, models);
        var client = host.Services.GetRequiredService<IBackgroundJobClient>();
        var storage = host.Services.GetRequiredService<JobStorage>();
        var scanId = client.Enqueue<IndexArchiveJob>(j => j.RunAsync(root, pattern, modelDirectory, options, null, CancellationToken.None));
        await output.WriteLineAsync($"queued scan job {scanId} of {root} ({pattern}); a worker in this process runs it and its ingest jobs (./rscapret serve shows them at /hangfire)");
        var pending = new List<string> { scanId };
        try
        {
            await host.StartAsync(ct);
            var scan = await WaitAsync(storage, root, scanId, new ConsoleProgress(output, null, "  "), error, ct);
            if (!scan.Succeeded)
            {
                await error.WriteLineAsync($"error: {root}: scan job {scanId} failed: {scan.Failure}");
                return 1;
            }
            ScanJobReport? report;
            using (var connection = storage.GetConnection()) report = IndexArchiveJob.ReadReport(connection, scanId);
            if (report is null) { await error.WriteLineAsync($"error: scan job {scanId} left no report"); return 1; }
            pending = report.Decisions.Where(d => d.JobId is not null).Select(d => d.JobId!).ToList();
            var failed = 0;
            foreach (var d in report.Decisions)
            {
                if (d.JobId is null)
                {
                    if (d.Decision == "failed") { failed++; await error.WriteLineAsync($"failed    {d.Path}: {d.Detail}"); }
                    else if (d.Decision == "moved") await output.WriteLineAsync($"moved     {d.Path} (from {d.From}; same bytes, no model work)");
                    else await output.WriteLineAsync($"{d.Decision,-9} {d.Path}" + (d.Decision == "removed" ? ": gone from the archive, out of search"
                        : d.Decision == "skipped" ? $": {d.Detail}" : ""));
                    continue;
                }
                var bar = new ConsoleProgress(output, terminal, "  ");
                var outcome = await WaitAsync(storage, d.Path, d.JobId, bar, error, ct);
                pending.Remove(d.JobId);
                if (!outcome.Succeeded)
                {
                    failed++;
                    bar.Clear();
                    var why = outcome.Failure is { } f && f.StartsWith(d.Path, StringComparison.Ordinal) ? f[d.Path.Length..].TrimStart(':', ' ') : outcome.Failure;
                    await error.WriteLineAsync($"failed    {d.Path}: {why} (job {d.JobId})");
                    continue;
                }
                if (outcome.Report is not { } ingest) { await output.WriteLineAsync($"{d.Decision,-9} {d.Path} (job {d.JobId} succeeded)"); continue; }
                var r = ingest.Result;
                var decision = IngestSceneJob.DecisionOf(r) is var word && word == "added" && d.Decision == "changed" ? "changed" : IngestSceneJob.DecisionOf(r);
                await output.WriteLineAsync($"{decision,-9} {d.Path}: {r.OutcomeText}, scene {r.SceneId}, {r.Tiles} tiles ({r.SkippedTiles} skipped)" +
                                            (r.Coverage is { } c ? $", coverage {c.ToString("P1", System.Globalization.CultureInfo.InvariantCulture)}" : ""));
                if (r.Warning is { } w) await output.WriteLineAsync($"  warning: {w}");
            }
            await output.WriteLineAsync(report.Summary + (failed > 0 ? $"; {failed} failed" : ""));
            return failed;
        }
        catch (Exception e)
        {
            DeleteUnfinished(storage, client, pending, ct.IsCancellationRequested ? "index-archive --wait was cancelled" : $"index-archive stopped: {e.Message}");
            throw;
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    /// <summary>A server like `rscapret worker`'s (storage, queues, job classes) that uses the model the demo already loaded.</summary>
    private static IHost BuildWorkerHost(string connectionString, ModelCache models)
    {
        var builder = Host.CreateApplicationBuilder();
        // Hangfire's start/stop chatter stays out of the demo's output (job failures are reported per scene); errors go to stderr.
        builder.Logging.SetMinimumLevel(LogLevel.Error);
        builder.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        // The demo handles Ctrl-C and SIGTERM itself; the default console lifetime would swallow them.
        builder.Services.AddSingleton<IHostLifetime, CommandLifetime>();
        builder.Services.AddSingleton(models);   // the demo's --device, and no second copy of the model
        builder.Services.AddRsCapRetJobs(connectionString)
            .AddRsCapRetWorker(JobQueues.All, 1, $"{ServerNamePrefix}{Environment.MachineName}:{Environment.ProcessId}");
        return builder.Build();
    }

    /// <summary>Polls the job's state until it has ended; on a terminal, draws its stored progress as the bar.</summary>
    private static async Task<Outcome> WaitAsync(JobStorage storage, string path, string id, ConsoleProgress bar, TextWriter error, CancellationToken ct)
    {
        string? retryReported = null;
        while (true)
        {
            using (var connection = storage.GetConnection())
            {
                var state = connection.GetStateData(id);
                if (state is null)
                    return new Outcome(path, id, false, null, "the job is no longer in the job storage");
                var name = state.Name;
                if (name == SucceededState.StateName)
                    return new Outcome(path, id, true, IngestSceneJob.ReadReport(connection, id), null);   // none from a worker of an earlier version
                if (name == FailedState.StateName)
                    return new Outcome(path, id, false, null, state.Data.TryGetValue("ExceptionMessage", out var message) ? message : state.Reason);
                if (name == DeletedState.StateName)
                    return new Outcome(path, id, false, null, "the job was deleted" + (state.Reason is { } why ? $" ({why})" : ""));
                if (name == ScheduledState.StateName && state.Reason != retryReported)
                {
                    // A transient failure (database, scene held by another process): Hangfire's retry filter runs it again later.
                    retryReported = state.Reason;
                    bar.Clear();
                    await error.WriteLineAsync($"warning: {Path.GetFileName(path)}: job {id}: {state.Reason}");
                }
                else if (name == ProcessingState.StateName && bar.DrawsBar && JobProgress.Read(connection, id) is { } p)
                    bar.Report(new IngestProgress(path, (int)p.Done, 0, (int)p.Total));
            }
            await Task.Delay(Poll, ct);
        }
    }

    private static async Task PrintAsync(Outcome outcome, ConsoleProgress bar, TextWriter output, TextWriter error)
    {
        var name = Path.GetFileName(outcome.Path);
        if (!outcome.Succeeded)
        {
            bar.Clear();
            await error.WriteLineAsync($"error: {name}: ingest job {outcome.JobId} failed: {outcome.Failure}");
            return;
        }
        if (outcome.Report is not { } report)
        {
            await output.WriteLineAsync($"{name}: ingest job {outcome.JobId} succeeded");
            return;
        }
        foreach (var message in report.Messages) bar.Report(new IngestProgress(outcome.Path, 0, 0, 0, message));
        var r = report.Result;
        await output.WriteLineAsync($"{name}: {r.OutcomeText}, {r.Tiles} tiles ({r.SkippedTiles} skipped), scene {r.SceneId}" + (r.Resolution is { } res ? $"; {res}" : ""));
        if (r.Warning is { } w) await output.WriteLineAsync($"  warning: {w}");
    }

    /// <summary>Deletes the jobs that have not ended (from the state seen, so one that just ended keeps its record).</summary>
    private static void DeleteUnfinished(JobStorage storage, IBackgroundJobClient client, IEnumerable<string> ids, string reason)
    {
        foreach (var id in ids)
        {
            try
            {
                using var connection = storage.GetConnection();
                if (connection.GetStateData(id)?.Name is { } state && Unfinished.Contains(state))
                    client.ChangeState(id, new DeletedState { Reason = reason }, state);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException)
            {
                // The database is out of reach: the job stays queued and any worker finishes it (ingestion is idempotent).
            }
        }
    }

    /// <summary>A host lifetime that leaves signals to the command.</summary>
    private sealed class CommandLifetime : IHostLifetime
    {
        public Task WaitForStartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
        public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    }
}
