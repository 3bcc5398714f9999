using System.ComponentModel;
using Hangfire;
using Hangfire.Server;

namespace RsCapRet.Jobs;

/// <summary>Contrastive CLIP fine-tuning to a run folder (resumes from its checkpoint when retried).</summary>
public sealed class TrainClipJob
{
    [Queue(JobQueues.Model)]
    [DisplayName("train-clip {0}")]
    // Hangfire resolves the job from DI and calls Run on that instance (RecurringJobDefinitions), so it stays an instance method.
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822:Mark members as static", Justification = "Hangfire job entry point, invoked on an instance")]
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
