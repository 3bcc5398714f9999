using System.Diagnostics;
using RsCapRet.Core;
using RsCapRet.Training;

namespace RsCapRet.Bench;

/// <summary>
/// Training speed of a config (default: the shipped model's, on UCM-Captions train): seconds per optimiser step and
/// samples/s over N steps after two warm-up steps. Data loading (decoding the split) is reported apart.
/// </summary>
public static class TrainBenchmark
{
    public static int Run(string[] args)
    {
        var i = Array.IndexOf(args, "--config");
        var config = i >= 0 ? args[i + 1] : Path.Combine(RepositoryPaths.FindRoot(), "models", "configs", "default-ucm.json");
        var s = Array.IndexOf(args, "--steps");
        var steps = s >= 0 ? int.Parse(args[s + 1], System.Globalization.CultureInfo.InvariantCulture) : 20;
        var cfg = TrainConfig.Load(config) with { MaxSteps = steps + 2, MaxValImages = 64, CheckpointEvery = int.MaxValue };
        var outDir = Directory.CreateTempSubdirectory("rscapret-bench-train-").FullName;
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        var last = TimeSpan.Zero;
        double? loadSeconds = null;
        var trainer = new RsCapRetTrainer(cfg, outDir, msg => { if (msg.StartsWith("parameters:", StringComparison.Ordinal)) loadSeconds ??= clock.Elapsed.TotalSeconds; })
        {
            StepProgress = (done, _) =>
            {
                var now = clock.Elapsed;
                if (done > 2) times.Add((now - last).TotalSeconds);   // steps 1-2 warm up allocators and threads
                last = now;
            },
        };
        try { trainer.Run(); }
        finally { Directory.Delete(outDir, true); }
        times.Sort();
        var median = times[times.Count / 2];
        Console.WriteLine($"config {config} ({cfg.Mode} mode, batch {cfg.BatchSize}, threads {cfg.Threads?.ToString() ?? "all"})");
        Console.WriteLine($"data loading (decode + tokenize the splits): {loadSeconds ?? double.NaN:F1} s");
        Console.WriteLine($"step time over {times.Count} steps: median {median:F3} s, mean {times.Average():F3} s, min {times[0]:F3} s, max {times[^1]:F3} s");
        Console.WriteLine($"throughput: {cfg.BatchSize / median:F1} samples/s (median step)");
        return 0;
    }
}
