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
        return $"{DecisionOf(result)}: {result.OutcomeText}, scene {result.SceneId}, {Counted.Of(result.Tiles, "tile")}, {result.SkippedTiles} skipped" +
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
