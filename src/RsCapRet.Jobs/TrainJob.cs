using System.ComponentModel;
using Hangfire;
using Hangfire.Server;

namespace RsCapRet.Jobs;

/// <summary>Runs a training config to a run folder (resumes from its checkpoint when retried).</summary>
public sealed class TrainJob
{
    [Queue(JobQueues.Model)]
    [DisplayName("train {0}")]
    // Hangfire resolves the job from DI and calls Run on that instance (RecurringJobDefinitions), so it stays an instance method.
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822:Mark members as static", Justification = "Hangfire job entry point, invoked on an instance")]
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
