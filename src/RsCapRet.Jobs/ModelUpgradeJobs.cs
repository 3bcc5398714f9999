using System.ComponentModel;
using Hangfire;
using Hangfire.Server;
using Npgsql;
using RsCapRet.Storage;

namespace RsCapRet.Jobs;

/// <summary>
/// `rscapret reindex --model DIR --activate-when-done` without --wait: checks whether every current archive path has a
/// complete version with the model; if so activates it (searches of the API, CLI and map switch to it), else schedules
/// itself again in <see cref="CheckEvery"/>. Each check's done/total paths is the progress bar on its job page.
/// </summary>
public sealed class ActivateWhenReindexedJob(NpgsqlDataSource dataSource, IBackgroundJobClient jobs)
{
    public static readonly TimeSpan CheckEvery = TimeSpan.FromSeconds(30);

    [Queue(JobQueues.Default)]
    [DisplayName("activate model {0} when reindexed")]
    public async Task<string> RunAsync(int modelId, PerformContext? context, CancellationToken ct)
    {
        var store = new CatalogStore(dataSource);
        var progress = new JobProgress(context);
        if ((await store.ModelSharesAsync(ct)).FirstOrDefault(m => m.Id == modelId) is not { } model)
            return $"model {modelId} is not in the catalogue (any more): nothing to activate";
        var name = $"{model.Name}@{model.Version} (id {modelId})";
        var state = $"{name}: complete versions of {model.Paths} of {model.TotalPaths} current paths, {model.Pending} being ingested, {model.Failed} failed";
        if (model.Active)
        {
            progress.Report(model.Paths, model.TotalPaths, "paths", state + "; active already", force: true);
            return $"{name} is active already: {state}";
        }
        if (model.Paths >= model.TotalPaths)
        {
            await store.ActivateModelAsync(modelId, ct);
            progress.Report(model.Paths, model.TotalPaths, "paths", state + "; activated", force: true);
            return $"activated {name}: every current path ({model.TotalPaths}) has a complete version with it; searches use it now";
        }
        var next = jobs.Schedule<ActivateWhenReindexedJob>(j => j.RunAsync(modelId, null, CancellationToken.None), CheckEvery);
        var wait = $"not yet; checking again in {CheckEvery.TotalSeconds:F0} s (job {next})" +
                   (model.Failed > 0 ? " — failed paths hold it back until they are ingested (rscapret scenes retry)" : "");
        progress.Report(model.Paths, model.TotalPaths, "paths", $"{state}; {wait}", force: true);
        return $"{state}; {wait}";
    }
}
