using System.Diagnostics;
using System.Globalization;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Raster;
using static TorchSharp.torch;

namespace RsCapRet.Bench;

/// <summary>
/// Model benchmarks: checkpoint loading (time and peak resident memory against the file size, each round in a
/// fresh child process so nothing else is resident) and captioning throughput (greedy and beam search, per batch size).
/// </summary>
public static class ModelBenchmark
{
    /// <summary>Writes a synthetic bf16 Llama of about <paramref name="gigabytes"/> GB (random weights).</summary>
    public static string WriteSyntheticLlama(string dir, double gigabytes)
    {
        if (File.Exists(Path.Combine(dir, "model.safetensors"))) return dir;
        const int hidden = 2048, inter = 5632, vocab = 32000;
        var perLayer = 4L * hidden * hidden + 3L * hidden * inter;
        var layers = Math.Max(1, (int)Math.Round((gigabytes * 1e9 / 2 - 2.0 * vocab * hidden) / perLayer));
        var config = new LlamaConfig
        {
            HiddenSize = hidden, IntermediateSize = inter, NumHiddenLayers = layers, NumAttentionHeads = 16, NumKeyValueHeads = 16,
            VocabSize = vocab, RmsNormEps = 1e-5, RopeTheta = 10000, MaxPositionEmbeddings = 2048,
        };
        var previous = get_default_dtype();
        set_default_dtype(ScalarType.BFloat16);
        try
        {
            using var llm = new LlamaForCausalLM(config);
            llm.SavePretrained(dir);
        }
        finally { set_default_dtype(previous); }
        return dir;
    }

    public static async Task<int> LoadAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var gb = a.Double("--gb", 2.0);
        var (warmup, rounds) = a.RoundCounts();
        var dir = Path.Combine(Path.GetTempPath(), $"rscapret-bench-llama-{gb.ToString(CultureInfo.InvariantCulture)}gb");
        var sw = Stopwatch.StartNew();
        WriteSyntheticLlama(dir, gb);
        // A file just written is still being written back to disk for a while: a first run measured 6.5 s per load
        // against 5.1 s for the next run on the same file. Flush it before anything is timed.
        using (var sync = Process.Start(new ProcessStartInfo("sync") { UseShellExecute = false })) sync?.WaitForExit();
        var file = new FileInfo(Path.Combine(dir, "model.safetensors")).Length;
        Console.WriteLine($"checkpoint: {dir} ({file / 1e9:F2} GB bf16), written/reused in {sw.Elapsed.TotalSeconds:F0} s");
        var report = new BenchReport("load", await BenchEnvironment.CollectAsync(torch: true));
        report.Options["gb"] = gb;
        report.Facts.Add(("checkpoint", FormattableString.Invariant($"{dir}: {file:N0} bytes ({file / 1e9:F2} GB) bf16")));
        report.Notes.Add("each round loads in a fresh process (its peak RSS is the loader's alone); after the warm-up the file is in the page cache, so rounds measure warm-cache loading");
        var sides = new List<Side> { new("load", "s", () => LoadInChildAsync(dir, file)) };
        var results = await Rounds.RunAsync(sides, warmup, rounds);
        report.Print(results, [], warmup, rounds);
        return 0;
    }

    private static async Task<Sample> LoadInChildAsync(string dir, long file)
    {
        var psi = new ProcessStartInfo("dotnet", [typeof(ModelBenchmark).Assembly.Location, "load-child", dir]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        if (p.ExitCode != 0) throw new InvalidOperationException($"load-child exited with {p.ExitCode}: {output}");
        var parts = output.Trim().Split(' ');
        var seconds = double.Parse(parts[0], CultureInfo.InvariantCulture);
        var baseline = long.Parse(parts[1], CultureInfo.InvariantCulture);
        var peak = long.Parse(parts[2], CultureInfo.InvariantCulture);
        return new Sample(seconds,
        [
            new("peak RSS", "GB", peak / 1e9),
            new("runtime + libtorch before loading", "GB", baseline / 1e9),
            new("peak RSS / file size", "x", (double)peak / file),
            new("loader's share / file size", "x", (double)(peak - baseline) / file),
        ]);
    }

    public static int LoadChild(string dir)
    {
        using (var warm = ones(1)) { }   // load libtorch before the baseline is taken
        var baseline = PeakRss();
        var sw = Stopwatch.StartNew();
        using var llm = LlamaForCausalLM.FromPretrained(dir, dtype: ScalarType.BFloat16);
        var seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine(FormattableString.Invariant($"{seconds:F3} {baseline} {PeakRss()}"));
        return 0;
    }

    internal static long PeakRss() => Bench.PeakRss.Peak();

    /// <summary>
    /// Captioning at each --batches size (default 1 and 16) and --beams width (default greedy and the model's own), all taking turns within every round; each
    /// side captions for at least --round-seconds. The ratios say what batching buys, measured in the same rounds.
    /// </summary>
    public static async Task<int> ThroughputAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var modelDir = a.String("--model", Path.Combine(RepositoryPaths.FindRoot(), "models", "default"));
        var batches = a.Ints("--batches", "1,16");
        var roundSeconds = a.Double("--round-seconds", 10);
        var (warmup, rounds) = a.RoundCounts();
        using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
        const int imageCount = 32;
        var images = Directory.EnumerateFiles(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images"), "*.jpg")
            .Order(StringComparer.Ordinal).Take(imageCount).Select(f => RasterImage.ReadRgb(f)).ToList();
        var report = new BenchReport("caption", await BenchEnvironment.CollectAsync(torch: true));
        report.Options["model"] = Path.GetFullPath(modelDir);
        report.Options["batches"] = string.Join(',', batches);
        report.Options["round-seconds"] = roundSeconds;
        report.Facts.Add(("images", $"{images.Count} UCM-Captions images cycled, input {encoder.InputSize} px, at most {encoder.Generation.MaxNewTokens} new tokens"));
        Console.WriteLine($"model: {modelDir} (input {encoder.InputSize} px)");

        // Greedy and the model's own decoding (its beam_width, what ingestion stores), unless --beams names others.
        var beams = a.Ints("--beams", encoder.Generation.BeamWidth > 1 ? $"1,{encoder.Generation.BeamWidth}" : "1");
        report.Options["beams"] = string.Join(',', beams);
        static string Name(int beam, int batch) => $"{(beam > 1 ? $"beam {beam}" : "greedy")}, batch {batch}";
        var sides = beams.SelectMany(beam => batches.Select(batch => new Side(Name(beam, batch), "images/s",
            () => Task.FromResult(Caption(encoder, images, batch, roundSeconds, encoder.Generation with { BeamWidth = beam }))))).ToList();
        var ratios = beams.SelectMany(beam => batches.Skip(1).Select(batch => new RatioSpec(Name(beam, batch), Name(beam, batches[0]))))
            .Concat(beams.Skip(1).SelectMany(beam => batches.Select(batch => new RatioSpec(Name(beam, batch), Name(beams[0], batch))))).ToList();
        var results = await Rounds.RunAsync(sides, warmup, rounds);
        report.Print(results, ratios, warmup, rounds);
        return 0;
    }

    private static Sample Caption(RsCapRetTileEncoder encoder, List<RgbImage> images, int batch, double roundSeconds, GenerationOptions generation)
    {
        int done = 0, tokens = 0;
        var (perSecond, _, seconds) = Rounds.Throughput(() =>
        {
            var chunk = Enumerable.Range(done, batch).Select(i => images[i % images.Count]).ToList();
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var ids = encoder.Model.GenerateCaptions(encoder.Preprocessor.Process(chunk), generation);
            tokens += ids.Sum(i => i.Length + 1);
            done += chunk.Count;
            return chunk.Count;
        }, roundSeconds);
        return new Sample(perSecond, [new("tokens", "tokens/s", tokens / seconds)]);
    }
}
