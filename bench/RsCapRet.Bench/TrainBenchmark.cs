using System.Diagnostics;
using RsCapRet.Core;
using RsCapRet.Training;

namespace RsCapRet.Bench;

/// <summary>
/// Training speed of a config (default: the shipped model's, on UCM-Captions train). One training run, its
/// optimiser steps cut into rounds of --steps steps: the first two steps (allocators, threads) and the warm-up
/// rounds are dropped, and so is any step that follows an epoch's validation and export, so a round holds training
/// steps only. Data loading (decoding the splits, caching frozen features) is reported apart, once.
/// </summary>
public static class TrainBenchmark
{
    private const int SettlingSteps = 2;

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var config = a.String("--config", Path.Combine(RepositoryPaths.FindRoot(), "models", "configs", "default-ucm.json"));
        var steps = a.Int("--steps", 10);
        var (warmup, rounds) = a.RoundCounts();
        var needed = SettlingSteps + (warmup + rounds) * steps;
        var cfg = TrainConfig.Load(config) with { MaxSteps = null, MaxValImages = 64, CheckpointEvery = int.MaxValue };
        var report = new BenchReport("train", await BenchEnvironment.CollectAsync(torch: true));
        report.Options["config"] = Path.GetFullPath(config);
        report.Options["steps per round"] = steps;
        Console.WriteLine($"config {config} ({cfg.Mode} mode, batch {cfg.BatchSize}, threads {cfg.Threads?.ToString() ?? "all"}); {needed} clean steps to take");
        Console.WriteLine($"method: one training run; {SettlingSteps} settling steps and {warmup} warm-up round(s) of {steps} steps dropped, then {rounds} rounds of {steps} steps");

        var clean = new List<double>();
        var clock = Stopwatch.StartNew();
        var last = TimeSpan.Zero;
        var afterEpochEnd = false;
        double? loadSeconds = null;
        using var stop = new CancellationTokenSource();
        var outDir = Directory.CreateTempSubdirectory("rscapret-bench-train-").FullName;
        var trainer = new RsCapRetTrainer(cfg, outDir, msg =>
        {
            if (msg.StartsWith("parameters:", StringComparison.Ordinal)) loadSeconds ??= clock.Elapsed.TotalSeconds;
            // Logged after an epoch's validation (and export): the next step's interval holds them, so it is dropped.
            if (msg.StartsWith("epoch ", StringComparison.Ordinal) && msg.Contains(": train loss", StringComparison.Ordinal)) afterEpochEnd = true;
        })
        {
            StepProgress = (done, _) =>
            {
                var now = clock.Elapsed;
                if (done > SettlingSteps && !afterEpochEnd) clean.Add((now - last).TotalSeconds);
                afterEpochEnd = false;
                last = now;
                if (clean.Count >= needed - SettlingSteps) stop.Cancel();
            },
        };
        try { trainer.Run(stop.Token); }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
        finally { Directory.Delete(outDir, true); }

        var measured = clean.Skip(warmup * steps).Chunk(steps).Where(c => c.Length == steps).Take(rounds).ToList();
        if (measured.Count < rounds)
            Console.WriteLine($"the run ended after {clean.Count} clean steps: {measured.Count} of {rounds} rounds measured (the config's epochs or early stopping ended it)");
        var samples = measured.Select(block => new Sample(cfg.BatchSize * steps / block.Sum(),
        [
            new("median step", "s", Summary.Of(block).Median),
            new("slowest step", "s", block.Max()),
        ])).ToList();
        for (var r = 0; r < samples.Count; r++) Console.WriteLine($"  round {r + 1}/{rounds}  train: {Rounds.Fmt(samples[r].Value)} samples/s");
        report.Facts.Add(("data loading, once, s (decode + tokenize the splits, cache frozen features)", loadSeconds));
        report.Facts.Add(("batch", cfg.BatchSize.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        report.Print([new SideResult("train", "samples/s", samples)], [], warmup, samples.Count);
        return 0;
    }
}
