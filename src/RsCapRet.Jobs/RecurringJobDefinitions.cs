using Hangfire;

namespace RsCapRet.Jobs;

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
