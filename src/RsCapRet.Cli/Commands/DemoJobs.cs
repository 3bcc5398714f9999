using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Jobs;
using RsCapRet.Pipeline;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// The demo's ingestion as Hangfire jobs: one ingest-scene job per scene (the job `rscapret worker` runs), worked by an
/// <see cref="InProcessWorker"/>, so the dashboard shows the demo's work while it runs and keeps the succeeded jobs
/// after; this class prints what the jobs did. The server stops when the demo's jobs have ended.
/// </summary>
public static class DemoJobs
{
    /// <summary>One scene and the tiling its job uses.</summary>
    public sealed record SceneJob(string Path, IngestJobOptions Options);

    /// <summary>
    /// Queues the scenes' jobs, runs a worker for them and prints each scene's result in order as its job ends (what
    /// the demo printed when it ingested in-process). A failed job is reported on <paramref name="error"/> and the
    /// others go on. Cancelled, it deletes its jobs that have not ended and stops the worker, which cancels the
    /// running one (its scene is released for the next run).
    /// </summary>
    public static async Task<IReadOnlyList<JobOutcome>> IngestAsync(string connectionString, string modelDirectory, ModelCache models,
        IReadOnlyList<SceneJob> scenes, TextWriter output, TextWriter error, TextWriter? terminal, CancellationToken ct)
    {
        using var worker = new InProcessWorker(connectionString, models);
        var jobs = new List<(string Path, string Id)>();
        foreach (var s in scenes) jobs.Add((s.Path, worker.EnqueueIngest(s.Path, modelDirectory, s.Options)));
        await output.WriteLineAsync($"queued ingest jobs {string.Join(", ", jobs.Select(j => j.Id))}; a worker in this process runs them " +
                                    "(./rscapret serve shows them at /hangfire)");
        var outcomes = new List<JobOutcome>();
        try
        {
            await worker.StartAsync(ct);
            foreach (var (path, id) in jobs)
            {
                var bar = new ConsoleProgress(output, terminal, "  ");
                var outcome = await WaitAsync(worker, path, id, bar, error, ct);
                outcomes.Add(outcome);
                await PrintAsync(outcome, bar, output, error);
            }
        }
        catch (Exception e)
        {
            // Stopped (Ctrl-C, SIGTERM) or broken off: no later worker should run what this demo no longer waits for.
            worker.DeleteUnfinished(jobs.Skip(outcomes.Count).Select(j => j.Id),
                ct.IsCancellationRequested ? "the demo was cancelled" : $"the demo stopped: {e.Message}");
            throw;
        }
        finally
        {
            await worker.StopAsync();
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
        using var worker = new InProcessWorker(connectionString, models);
        var scanId = worker.EnqueueScan(root, pattern, modelDirectory, options);
        await output.WriteLineAsync($"queued scan job {scanId} of {root} ({pattern}); a worker in this process runs it and its ingest jobs (./rscapret serve shows them at /hangfire)");
        var pending = new List<string> { scanId };
        try
        {
            await worker.StartAsync(ct);
            var scan = await WaitAsync(worker, root, scanId, new ConsoleProgress(output, null, "  "), error, ct);
            if (!scan.Succeeded)
            {
                await error.WriteLineAsync($"error: {root}: scan job {scanId} failed: {scan.Failure}");
                return 1;
            }
            var report = worker.ReadScanReport(scanId);
            if (report is null) { await error.WriteLineAsync($"error: scan job {scanId} left no report"); return 1; }
            pending = report.Decisions.Where(d => d.JobId is not null).Select(d => d.JobId!).ToList();
            int failed = 0, jobsFailed = 0, jobsDone = 0;
            // GDAL's messages start with the file's path, which the line already names.
            string Without(string path, string? text) => text is { } t && t.StartsWith(path, StringComparison.Ordinal) ? t[path.Length..].TrimStart(':', ' ') : text ?? "";
            foreach (var d in report.Decisions)
            {
                if (d.JobId is null)
                {
                    if (d.Decision == "failed") { failed++; await error.WriteLineAsync($"failed    {d.Path}: {Without(d.Path, d.Detail)}"); }
                    else if (d.Decision == "moved") await output.WriteLineAsync($"moved     {d.Path} (from {d.From}; same bytes, no model work)");
                    else await output.WriteLineAsync($"{d.Decision,-9} {d.Path}" + (d.Decision == "removed" ? ": gone from the archive, out of search"
                        : d.Decision == "skipped" ? $": {d.Detail}" : ""));
                    continue;
                }
                var bar = new ConsoleProgress(output, terminal, "  ");
                var outcome = await WaitAsync(worker, d.Path, d.JobId, bar, error, ct);
                pending.Remove(d.JobId);
                if (!outcome.Succeeded)
                {
                    failed++;
                    jobsFailed++;
                    bar.Clear();
                    await error.WriteLineAsync($"failed    {d.Path}: {Without(d.Path, outcome.Failure)} (job {d.JobId})");
                    continue;
                }
                jobsDone++;
                if (outcome.Report is not { } ingest) { await output.WriteLineAsync($"{d.Decision,-9} {d.Path} (job {d.JobId} succeeded)"); continue; }
                var r = ingest.Result;
                var decision = IngestSceneJob.DecisionOf(r) is var word && word == "added" && d.Decision == "changed" ? "changed" : IngestSceneJob.DecisionOf(r);
                await output.WriteLineAsync($"{decision,-9} {d.Path}: {r.OutcomeText}, scene {r.SceneId}, {Counted.Of(r.Tiles, "tile")} ({r.SkippedTiles} skipped)" +
                                            (r.Coverage is { } c ? $", coverage {c.ToString("P1", System.Globalization.CultureInfo.InvariantCulture)}" : ""));
                if (r.Warning is { } w) await output.WriteLineAsync($"  warning: {w}");
            }
            // The scan's counts are its decisions; what the ingest jobs then did is said apart from them.
            await output.WriteLineAsync(report.Summary + (jobsDone + jobsFailed > 0 ? $" (of them {jobsDone} succeeded, {jobsFailed} failed)" : ""));
            return failed;
        }
        catch (Exception e)
        {
            worker.DeleteUnfinished(pending, ct.IsCancellationRequested ? "index-archive --wait was cancelled" : $"index-archive stopped: {e.Message}");
            throw;
        }
        finally
        {
            await worker.StopAsync();
        }
    }

    /// <summary>Waits for the job; on a terminal, draws its stored progress as the bar.</summary>
    private static Task<JobOutcome> WaitAsync(InProcessWorker worker, string path, string id, ConsoleProgress bar, TextWriter error, CancellationToken ct) =>
        worker.WaitAsync(path, id, async reason =>
            {
                bar.Clear();
                await error.WriteLineAsync($"warning: {Path.GetFileName(path)}: job {id}: {reason}");
            },
            bar.DrawsBar ? p => bar.Report(new IngestProgress(path, (int)p.Done, 0, (int)p.Total)) : null, ct);

    private static async Task PrintAsync(JobOutcome outcome, ConsoleProgress bar, TextWriter output, TextWriter error)
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
        await output.WriteLineAsync($"{name}: {r.OutcomeText}, {Counted.Of(r.Tiles, "tile")} ({r.SkippedTiles} skipped), scene {r.SceneId}" + (r.Resolution is { } res ? $"; {res}" : ""));
        if (r.Warning is { } w) await output.WriteLineAsync($"  warning: {w}");
    }
}
