using System.Diagnostics;
using RsCapRet.Evaluation;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RsCapRet.Training;

/// <summary>What the epoch loop reads of an epoch's figures: the validation recalls that pick the best epoch and get logged.</summary>
public interface IEpochFigures
{
    /// <summary>1-based; 0 for the model before any training step.</summary>
    int Epoch { get; }
    RecallAtK ValTextToImage { get; }
    RecallAtK ValImageToText { get; }
    IReadOnlyDictionary<string, RecallAtK>? ValTextToImageByDataset { get; }
}

/// <summary>A run's settings as the epoch loop uses them (batches, schedule, stopping, checkpoints).</summary>
internal sealed record EpochLoopSettings(int TrainCount, int BatchSize, int Epochs, int Seed, int? MaxSteps, int CheckpointEvery,
    int EarlyStoppingPatience, double LearningRate, int WarmupSteps, string LrSchedule, double MinLrRatio);

/// <summary>One optimiser step as the step log line reports it: its losses, learning rate, and the epoch's pace so far.</summary>
internal sealed record StepReport(int Epoch, int StepsDone, double[] Losses, double LearningRate, int StepsThisEpoch, TimeSpan EpochElapsed);

/// <summary>An epoch's training figures, handed to validation to make the epoch's result.</summary>
internal sealed class EpochTotals(int epoch, int step, double[]? lossSums, int steps, Stopwatch? watch)
{
    /// <summary>The model before any training step (epoch 0): no losses, no time.</summary>
    public static EpochTotals Baseline { get; } = new(0, 0, null, 0, null);

    /// <summary>1-based; 0 for the baseline.</summary>
    public int Epoch => epoch;
    /// <summary>Steps done by the end of the epoch.</summary>
    public int Step => step;
    /// <summary>The mean over the epoch's steps of the trainer's <paramref name="index"/>-th loss: NaN for the baseline, 0 for an epoch resumed after its last step.</summary>
    public double MeanLoss(int index) => watch is null ? double.NaN : steps == 0 ? 0 : lossSums![index] / steps;
    /// <summary>Seconds since the epoch began, read when asked, so that validation counts in the epoch's time (0 for the baseline).</summary>
    public double Seconds => watch?.Elapsed.TotalSeconds ?? 0;
}

/// <summary>
/// The epoch loop every trainer here runs: resume from the checkpoint (weights, optimiser state, history), optionally
/// the untrained baseline as epoch 0, a permutation per epoch from (seed, epoch) so batches are a pure function of
/// (seed, epoch, step) and a resumed run continues exactly, the learning-rate schedule, step progress, checkpoints
/// every checkpoint_every steps and after each epoch, a stop with a checkpoint at max_steps, validation after each
/// epoch, export of the best epoch by val text->image mR (or of every epoch), early stopping, and the report.
/// </summary>
internal sealed class EpochLoop<TResult> where TResult : IEpochFigures
{
    public required EpochLoopSettings Settings { get; init; }
    public required string OutDir { get; init; }
    public required Action<string> Log { get; init; }
    /// <summary>Called after every optimiser step with (steps done, steps planned).</summary>
    public Action<int, int>? StepProgress { get; init; }
    public required nn.Module Model { get; init; }
    public required OptimizerHelper Optimizer { get; init; }
    /// <summary>One optimiser step on (batch indices, step, learning rate); returns the step's losses, the minimised one first.</summary>
    public required Func<int[], int, double, double[]> TrainStep { get; init; }
    /// <summary>The order of the training indices in an epoch, from (epoch-specific seed); a plain shuffle when null.</summary>
    public Func<int, int[]>? EpochOrder { get; init; }
    /// <summary>The log line of every tenth step.</summary>
    public required Func<StepReport, string> StepLine { get; init; }
    /// <summary>Validates the model and makes the epoch's result from its training figures.</summary>
    public required Func<EpochTotals, TResult> ValidateEpoch { get; init; }
    /// <summary>The log line of a finished epoch.</summary>
    public required Func<TResult, string> EpochLine { get; init; }
    /// <summary>Validate the model before any step and record it as epoch 0 (it never counts as the best).</summary>
    public bool ValidateBeforeTraining { get; init; }
    /// <summary>Export after every epoch (selection 'last') instead of after each new best; never stops early then.</summary>
    public bool ExportEveryEpoch { get; init; }
    /// <summary>Exports the model as it is now; takes the 1-based epoch.</summary>
    public required Action<int> Export { get; init; }
    /// <summary>Where exports go, as the log says it ("exported to ...").</summary>
    public required string ExportedTo { get; init; }
    /// <summary>Writes the run's report (history.csv, plot) after each epoch.</summary>
    public required Action<List<TResult>> WriteReport { get; init; }

    private sealed record CheckpointState(int Epoch, int Step, List<TResult> History);

    public List<TResult> Run(CancellationToken ct = default)
    {
        var s = Settings;
        var stepsPerEpoch = s.TrainCount / s.BatchSize;
        if (stepsPerEpoch == 0) throw new InvalidOperationException($"{s.TrainCount} training images do not fill one batch of {s.BatchSize}");
        var totalSteps = stepsPerEpoch * s.Epochs;
        var checkpointDir = Path.Combine(OutDir, "checkpoint");
        var resumed = TrainingRun.TryResume<CheckpointState>(checkpointDir, Model, Optimizer);
        var (startEpoch, step, history) = resumed is null ? (0, 0, new List<TResult>()) : (resumed.Epoch, resumed.Step, resumed.History);
        if (resumed is not null) Log($"resumed from {checkpointDir}: epoch {startEpoch}, step {step}");
        if (ValidateBeforeTraining && history.Count == 0)
        {
            var baseline = ValidateEpoch(EpochTotals.Baseline);
            history.Add(baseline);
            Log($"before training: val text->image {baseline.ValTextToImage}, image->text {baseline.ValImageToText}");
        }
        var trained = history.Where(h => h.Epoch > 0).ToList();
        var best = trained.Count == 0 ? double.NegativeInfinity : trained.Max(h => h.ValTextToImage.Mean);
        var sinceBest = trained.Count == 0 ? 0 : trained.Count - 1 - trained.FindLastIndex(h => h.ValTextToImage.Mean == best);

        for (var epoch = startEpoch; epoch < s.Epochs && sinceBest < s.EarlyStoppingPatience; epoch++)
        {
            var sw = Stopwatch.StartNew();
            var order = EpochOrder?.Invoke(s.Seed * 1000 + epoch) ?? TrainingRun.Permutation(s.TrainCount, s.Seed * 1000 + epoch);
            double[]? sums = null;
            var n = 0;
            for (var b = step - epoch * stepsPerEpoch; b < stepsPerEpoch; b++, step++)
            {
                ct.ThrowIfCancellationRequested();
                if (step == s.MaxSteps)
                {
                    SaveCheckpoint(checkpointDir, epoch, step, history);
                    Log($"stopped at max_steps {step}; checkpoint in {checkpointDir}");
                    return history;
                }
                var lr = TrainingRun.LearningRate(step, s.LearningRate, s.WarmupSteps, s.LrSchedule, s.MinLrRatio, totalSteps);
                var losses = TrainStep(order.Skip(b * s.BatchSize).Take(s.BatchSize).ToArray(), step, lr);
                sums ??= new double[losses.Length];
                for (var i = 0; i < losses.Length; i++) sums[i] += losses[i];
                n++;
                StepProgress?.Invoke(step + 1, totalSteps);
                if (step % 10 == 0) Log(StepLine(new StepReport(epoch + 1, step + 1, losses, lr, n, sw.Elapsed)));
                if ((step + 1) % s.CheckpointEvery == 0) SaveCheckpoint(checkpointDir, epoch, step + 1, history);
            }
            var result = ValidateEpoch(new EpochTotals(epoch + 1, step, sums, n, sw));
            history.Add(result);
            Log(EpochLine(result));
            if (result.ValTextToImageByDataset is { } byDataset)
                foreach (var (name, r) in byDataset) Log($"  val text->image {name}: {r}");
            if (ExportEveryEpoch)
            {
                Export(epoch + 1);
                Log($"  selection 'last': epoch {epoch + 1} {ExportedTo}");
            }
            else if (result.ValTextToImage.Mean > best)
            {
                best = result.ValTextToImage.Mean;
                sinceBest = 0;
                Export(epoch + 1);
                Log($"  new best (text->image mR {best:F2}): {ExportedTo}");
            }
            else sinceBest++;
            SaveCheckpoint(checkpointDir, epoch + 1, step, history);
            WriteReport(history);
        }
        if (sinceBest >= s.EarlyStoppingPatience) Log($"early stop: no improvement of val text->image mR for {sinceBest} epochs");
        return history;
    }

    private void SaveCheckpoint(string dir, int epoch, int step, List<TResult> history) =>
        TrainingRun.SaveCheckpoint(dir, Model, Optimizer, new CheckpointState(epoch, step, history));
}
