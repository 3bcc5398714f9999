using System.ComponentModel;
using Hangfire;
using Hangfire.Server;
using RsCapRet.Inference;

namespace RsCapRet.Jobs;

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
