using System.ComponentModel;
using Hangfire;
using Hangfire.Common;
using Hangfire.Server;
using Hangfire.Storage;
using Npgsql;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Jobs;

/// <summary>
/// Scans an archive folder (<see cref="ArchiveScan"/>): files gone are removed from search, files moved keep their
/// versions, and each new or changed file gets an ingest job. Unchanged files (same size and modification time) are
/// not re-hashed. The decisions are the job's result on the dashboard and its <see cref="ReportParameter"/>.
/// </summary>
public sealed class IndexArchiveJob(NpgsqlDataSource dataSource, IBackgroundJobClient jobs)
{
    public const string ReportParameter = "rscapret.scan";
    /// <summary>How many failed files the job's result text names (every decision is in the report parameter).</summary>
    private const int ResultLines = 50;

    public static ScanJobReport? ReadReport(IStorageConnection connection, string jobId) =>
        connection.GetJobParameter(jobId, ReportParameter) is { Length: > 0 } json
            ? SerializationHelper.Deserialize<ScanJobReport>(json, SerializationOption.User) : null;

    /// <summary>The signature of jobs queued before scans kept a report (still in queues and recurring definitions).</summary>
    public Task<string> RunAsync(string root, string pattern, string modelDirectory, IngestJobOptions? options, CancellationToken ct) =>
        RunAsync(root, pattern, modelDirectory, options, null, ct);

    /// <param name="root">an archive folder, or a local STAC catalog or collection JSON (its items' raster assets are
    /// the scenes, their datetime and collection recorded on the scene; <paramref name="pattern"/> is not used then)</param>
    [Queue(JobQueues.Default)]
    [DisplayName("index {0} ({1})")]
    public async Task<string> RunAsync(string root, string pattern, string modelDirectory, IngestJobOptions? options, PerformContext? context, CancellationToken ct)
    {
        options ??= new IngestJobOptions();
        var store = new CatalogStore(dataSource);
        var identity = RsCapRetTileEncoder.IdentityOf(modelDirectory);
        var modelId = await store.RegisterModelAsync(identity, ct);
        await store.RecordModelDirectoryAsync(modelId, Path.GetFullPath(modelDirectory), ct);
        var planKey = IngestPlan.For(options.ToTiling(), RsCapRetTileEncoder.TilingOf(modelDirectory).InputSize, options.Captions).Key;
        if (StacCatalog.IsCatalogFile(root))
        {
            int queued = 0, seen = 0;
            var failed = new List<string>();
            foreach (var item in StacCatalog.Items(root))
            {
                ct.ThrowIfCancellationRequested();
                seen++;
                if (item.Problem is not null) { failed.Add($"{item.ItemPath}: {item.Problem}"); continue; }
                var asset = Path.GetFullPath(item.AssetPath!);
                if (await ShowsAsync(store, asset, modelId, planKey, ct)) continue;
                var itemOptions = options with { StacItem = item.ItemPath };
                jobs.Enqueue<IngestSceneJob>(j => j.RunAsync(asset, modelDirectory, itemOptions, null, CancellationToken.None));
                queued++;
            }
            var summary = $"{Counted.Of(seen, "STAC item")} seen, {Counted.Of(queued, "ingest job")} queued";
            // A malformed item fails alone: the scan goes on, and the job's result names each such item and its problem.
            return failed.Count == 0 ? summary : $"{summary}, {failed.Count} items failed: {string.Join("; ", failed)}";
        }
        if (!Directory.Exists(root)) throw new TransientJobException($"{root}: archive folder is not reachable");
        var progress = new JobProgress(context);
        var scan = await ArchiveScan.RunAsync(store, root, pattern, modelId, planKey, ct: ct, followLinksOutside: options.FollowLinksOutside);
        var lines = new List<ScanJobLine>();
        foreach (var d in scan.Decisions)
        {
            string? jobId = null;
            if (d.Kind is ScanDecisionKind.Added or ScanDecisionKind.Changed)
            {
                var path = d.Path;
                jobId = jobs.Enqueue<IngestSceneJob>(j => j.RunAsync(path, modelDirectory, options, null, CancellationToken.None));
            }
            lines.Add(new ScanJobLine(d.Path, d.Word, d.Detail, d.From, jobId));
        }
        var queuedCount = lines.Count(l => l.JobId is not null);
        var text = $"{scan.Summary}; {Counted.Of(queuedCount, "ingest job")} queued";
        JobPageView.SetParameter(context, ReportParameter, new ScanJobReport(text, lines, scan.Files, scan.Hashed));
        progress.Report(scan.Files, scan.Files, "files", text, force: true);
        // The result is the summary and the files that failed (the dashboard draws every decision from the report).
        var failures = scan.Decisions.Where(d => d.Kind == ScanDecisionKind.Failed).ToList();
        return failures.Count == 0 ? text
            : $"{text}; failed: " + string.Join("; ", failures.Take(ResultLines).Select(d => $"{d.Path}: {d.Detail}")) + (failures.Count > ResultLines ? $"; ... and {failures.Count - ResultLines} more" : "");
    }

    /// <summary>Whether the path already shows this content with this plan (a STAC asset needs no job).</summary>
    private static async Task<bool> ShowsAsync(CatalogStore store, string path, int modelId, string planKey, CancellationToken ct)
    {
        if (await store.GetScenePathAsync(path, modelId, ct) is not { Removed: false, Current: { } shown } || shown.PlanKey != planKey) return false;
        return await store.KnownFileAsync(path, ct) is { } known && known.Describes(new FileInfo(path)) && known.ContentSha256 == shown.ContentSha256;
    }
}
