using System.Collections.Concurrent;
using System.ComponentModel;
using Hangfire;
using Hangfire.Common;
using Hangfire.Server;
using Hangfire.Storage;
using Npgsql;
using RsCapRet.Model;
using GenerationOptions = RsCapRet.Model.GenerationOptions;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using RsCapRet.Storage;

namespace RsCapRet.Jobs;

/// <summary>How to tile scenes in jobs; the JSON-friendly subset of <see cref="TilingOptions"/>.</summary>
public sealed record IngestJobOptions(string? Bands = null, double? Gsd = null, int Overlap = 0, double MaxNodata = 0.5, bool NoCrs = false, bool Captions = true,
    string? StacItem = null, bool SkipOutOfRange = false, bool Force = false, bool FollowLinksOutside = false, bool Cells = false)
{
    /// <summary>The options a stored plan asks for (to retry a failed version as it was made).</summary>
    public static IngestJobOptions FromPlan(IngestPlan plan) =>
        new(plan.Bands, plan.Gsd, plan.Overlap, plan.MaxNodata, plan.NoCrs, plan.Captions, Cells: plan.Cells);

    public IngestOptions ToIngest() => new() { Tiling = ToTiling(), Caption = Captions, SkipOutOfRange = SkipOutOfRange, Force = Force, Cells = Cells };

    public TilingOptions ToTiling() => new()
    {
        Bands = Bands is null ? null : Bands.Split(',').Select(b => int.Parse(b.Trim(), System.Globalization.CultureInfo.InvariantCulture)).ToArray(),
        TargetGsd = Gsd, Overlap = Overlap, MaxNodataFraction = MaxNodata, AllowMissingCrs = NoCrs, StacItem = StacItem,
    };
}

/// <summary>
/// Loaded models, one per folder per worker process: loading a model is costly, jobs are many. The device is
/// <paramref name="device"/> when given (the demo's --device), else RSCAPRET_DEVICE (default auto: CUDA on GPU workers).
/// </summary>
public sealed class ModelCache(string? device = null) : IDisposable
{
    private readonly ConcurrentDictionary<string, Lazy<RsCapRetTileEncoder>> _models = new();
    private readonly SemaphoreSlim _inference = new(1, 1);
    private readonly string _device = device ?? Environment.GetEnvironmentVariable("RSCAPRET_DEVICE") ?? "auto";

    public RsCapRetTileEncoder Get(string modelDirectory) =>
        _models.GetOrAdd(Path.GetFullPath(modelDirectory), dir => new Lazy<RsCapRetTileEncoder>(() => RsCapRetTileEncoder.Load(dir, _device))).Value;

    /// <summary>A model is not thread-safe; jobs of one process take turns on it (torch uses every core anyway).</summary>
    public async Task<T> WithModelAsync<T>(string modelDirectory, Func<RsCapRetTileEncoder, Task<T>> work, CancellationToken ct)
    {
        await _inference.WaitAsync(ct);
        try { return await work(Get(modelDirectory)); }
        finally { _inference.Release(); }
    }

    public void Dispose()
    {
        foreach (var m in _models.Values.Where(m => m.IsValueCreated)) m.Value.Dispose();
        _inference.Dispose();
    }
}

/// <summary>What an ingest job found and said: its result and the ingestor's messages (scene description, summary).</summary>
public sealed record IngestJobReport(IngestResult Result, IReadOnlyList<string> Messages);

/// <summary>Ingests one scene file with one model. Idempotent: the same content and model is done once.</summary>
public sealed class IngestSceneJob(NpgsqlDataSource dataSource, ModelCache models)
{
    /// <summary>The job parameter holding the job's <see cref="IngestJobReport"/> once it has succeeded.</summary>
    public const string ReportParameter = "rscapret.ingest";

    /// <summary>The report of a succeeded ingest job, whichever worker ran it; null when it has none.</summary>
    public static IngestJobReport? ReadReport(IStorageConnection connection, string jobId) =>
        connection.GetJobParameter(jobId, ReportParameter) is { Length: > 0 } json
            ? SerializationHelper.Deserialize<IngestJobReport>(json, SerializationOption.User) : null;

    [Queue(JobQueues.Model)]
    [DisplayName("ingest {0}")]
    public async Task<string> RunAsync(string path, string modelDirectory, IngestJobOptions? options, PerformContext? context, CancellationToken ct)
    {
        options ??= new IngestJobOptions();
        if (!File.Exists(path) && Directory.Exists(Path.GetDirectoryName(path)))
            throw new RasterException(path, "does not exist (moved or deleted since it was queued)");
        var progress = new JobProgress(context);
        var messages = new List<string>();
        var result = await models.WithModelAsync(modelDirectory, encoder =>
            new SceneIngestor(new CatalogStore(dataSource), encoder).IngestAsync(path, options.ToIngest(),
                p =>
                {
                    if (p.Message is not null) messages.Add(p.Message);
                    progress.Report(p.Done, p.GridTiles, "tiles", p.Message ?? $"{p.Stored} stored, {p.Skipped} skipped (nodata)", force: p.Message is not null);
                }, ct), ct);
        // Another worker holds the scene: retry later. Its lease (renewed on a timer and with every batch) runs out if that worker
        // died, and then this job takes the scene over; if it finishes instead, the retry finds it done.
        if (result.Outcome == IngestOutcome.HeldByAnotherWorker)
            throw new TransientJobException($"{path}: scene {result.SceneId} is being ingested by another worker; retrying later");
        // Kept in the job storage beside the progress, so whoever waits on the job (the demo) can print what a direct ingest prints.
        JobPageView.SetParameter(context, ReportParameter, new IngestJobReport(result, messages));
        return $"{DecisionOf(result)}: {result.OutcomeText}, scene {result.SceneId}, {result.Tiles} tiles, {result.SkippedTiles} skipped" +
               (result.Coverage is { } c ? $", coverage {c:P1}" : "") + $", {result.Elapsed.TotalSeconds:F1} s";
    }

    /// <summary>The archive decision an ingest amounted to, in the words of `index-archive`.</summary>
    public static string DecisionOf(IngestResult r) => r.Outcome switch
    {
        IngestOutcome.AlreadyIngested => "unchanged",
        IngestOutcome.SkippedOutOfRange => "skipped",
        IngestOutcome.HeldByAnotherWorker => "held",
        IngestOutcome.Failed => "failed",
        _ when r.ReplacedSceneId is not null => "changed",
        _ => "added",
    };
}

/// <summary>What an archive scan decided (kept on its job, so `index-archive --wait` and the dashboard show it).</summary>
public sealed record ScanJobReport(string Summary, IReadOnlyList<ScanJobLine> Decisions, int Files, int Hashed);

/// <summary>One path's decision; <see cref="JobId"/> is the ingest job queued for it.</summary>
public sealed record ScanJobLine(string Path, string Decision, string? Detail, string? From, string? JobId);

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
            var summary = $"{seen} STAC items seen, {queued} ingest jobs queued";
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
        var text = $"{scan.Summary}; {queuedCount} ingest jobs queued";
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

/// <summary>
/// Registers the recurring jobs of jobs/*.json with Hangfire (ids are stable; a definition whose cron is "manual" is
/// not registered, and a registration it had earlier is removed).
/// </summary>
public static class RecurringJobDefinitions
{
    public static void Apply(IRecurringJobManager manager, IReadOnlyList<JobDefinition> definitions, string baseDirectory)
    {
        string Abs(string p) => Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(baseDirectory, p));
        foreach (var d in definitions)
        {
            // A job that runs only when asked is not a recurring job; one registered by an earlier version goes.
            if (d.IsManual) { manager.RemoveIfExists(d.Id); continue; }
            var options = new RecurringJobOptions { TimeZone = TimeZoneInfo.Utc };
            switch (d.Job)
            {
                case "index-archive":
                    var (root, glob, model) = (Abs(d.Arg("root")), d.Arg("glob"), Abs(d.Arg("model")));
                    manager.AddOrUpdate<IndexArchiveJob>(d.Id, d.Queue, j => j.RunAsync(root, glob, model, null, CancellationToken.None), d.Cron, options);
                    break;
                case "ingest-scene":
                    var (path, m) = (Abs(d.Arg("path")), Abs(d.Arg("model")));
                    manager.AddOrUpdate<IngestSceneJob>(d.Id, d.Queue, j => j.RunAsync(path, m, null, null, CancellationToken.None), d.Cron, options);
                    break;
                case "train":
                    var (config, outDir) = (Abs(d.Arg("config")), Abs(d.Arg("out")));
                    manager.AddOrUpdate<TrainJob>(d.Id, d.Queue, j => j.Run(config, outDir, null, CancellationToken.None), d.Cron, options);
                    break;
                case "train-clip":
                    var (clipConfig, clipOut) = (Abs(d.Arg("config")), Abs(d.Arg("out")));
                    manager.AddOrUpdate<TrainClipJob>(d.Id, d.Queue, j => j.Run(clipConfig, clipOut, null, CancellationToken.None), d.Cron, options);
                    break;
                case "evaluate":
                    var (em, ed, es, eo) = (Abs(d.Arg("model")), Abs(d.Arg("dataset")), d.Arg("split"), Abs(d.Arg("out")));
                    manager.AddOrUpdate<EvaluateJob>(d.Id, d.Queue, j => j.RunAsync(em, ed, es, eo, null, CancellationToken.None), d.Cron, options);
                    break;
                default:
                    throw new FormatException($"Job definition '{d.Id}': job '{d.Job}' cannot be scheduled as a recurring job by this version.");
            }
        }
    }
}

/// <summary>Runs a training config to a run folder (resumes from its checkpoint when retried).</summary>
public sealed class TrainJob
{
    [Queue(JobQueues.Model)]
    [DisplayName("train {0}")]
    [AutomaticRetry(Attempts = 0)]
    public string Run(string configPath, string outDir, PerformContext? context, CancellationToken ct)
    {
        var progress = new JobProgress(context);
        var trainer = new RsCapRet.Training.RsCapRetTrainer(RsCapRet.Training.TrainConfig.Load(configPath), outDir, _ => { })
        {
            StepProgress = (done, total) => progress.Report(done, total, "steps"),
        };
        var history = trainer.Run(ct);
        var best = history.MaxBy(h => h.ValTextToImage.Mean);
        return best is null ? "no epoch completed" : $"best epoch {best.Epoch}: val text->image {best.ValTextToImage}";
    }
}

/// <summary>Contrastive CLIP fine-tuning to a run folder (resumes from its checkpoint when retried).</summary>
public sealed class TrainClipJob
{
    [Queue(JobQueues.Model)]
    [DisplayName("train-clip {0}")]
    [AutomaticRetry(Attempts = 0)]
    public string Run(string configPath, string outDir, PerformContext? context, CancellationToken ct)
    {
        var progress = new JobProgress(context);
        var trainer = new RsCapRet.Training.ClipTrainer(RsCapRet.Training.ClipTrainConfig.Load(configPath), outDir, _ => { })
        {
            StepProgress = (done, total) => progress.Report(done, total, "steps"),
        };
        var history = trainer.Run(ct);
        var before = history.FirstOrDefault(h => h.Epoch == 0);
        var best = history.Where(h => h.Epoch > 0).MaxBy(h => h.ValTextToImage.Mean);
        return best is null ? "no epoch completed"
            : $"best epoch {best.Epoch}: val text->image {best.ValTextToImage} (before training: {before?.ValTextToImage})";
    }
}

/// <summary>Benchmark evaluation of a model on a dataset split; writes report files to the output folder.</summary>
public sealed class EvaluateJob(ModelCache models)
{
    [Queue(JobQueues.Model)]
    [DisplayName("evaluate {0} on {1} ({2})")]
    public Task<string> RunAsync(string modelDirectory, string datasetDirectory, string split, string outDir, PerformContext? context, CancellationToken ct) =>
        models.WithModelAsync(modelDirectory, encoder =>
        {
            var progress = new JobProgress(context);
            var report = RsCapRet.Training.ModelEvaluator.Evaluate(encoder.Model, encoder.Tokenizer, encoder.Preprocessor, encoder.Identity.Name,
                datasetDirectory, split, encoder.Generation with { MaxNewTokens = 40 }, RsCapRet.Evaluation.MetricOptions.FromEnvironment(), outDir: outDir,
                progress: (done, total) => progress.Report(done, total, "images captioned"));
            return Task.FromResult($"CIDEr {report.Captions.Corpus["CIDEr"]:F3}, text->image mR {report.TextToImage.Mean:F2}");
        }, ct);
}
