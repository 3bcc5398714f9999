using System.Diagnostics;
using System.Globalization;
using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Pipeline;
using RsCapRet.Raster;
using static TorchSharp.torch;

namespace RsCapRet.Bench;

/// <summary>
/// Model benchmarks: checkpoint loading (time and peak resident memory against the file size, measured in a
/// child process so nothing else is resident) and captioning throughput (greedy, batch 1 and 16).
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
        var gb = Arg(args, "--gb", 2.0);
        var dir = Path.Combine(Path.GetTempPath(), $"rscapret-bench-llama-{gb.ToString(CultureInfo.InvariantCulture)}gb");
        var sw = Stopwatch.StartNew();
        WriteSyntheticLlama(dir, gb);
        var file = new FileInfo(Path.Combine(dir, "model.safetensors")).Length;
        Console.WriteLine($"checkpoint: {dir} ({file / 1e9:F2} GB bf16), written/reused in {sw.Elapsed.TotalSeconds:F0} s");
        // Load in a fresh process: its peak RSS is the loader's alone.
        var psi = new ProcessStartInfo("dotnet", [typeof(ModelBenchmark).Assembly.Location, "load-child", dir]) { RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        var parts = output.Trim().Split(' ');
        var seconds = double.Parse(parts[0], CultureInfo.InvariantCulture);
        var baseline = long.Parse(parts[1], CultureInfo.InvariantCulture);
        var peak = long.Parse(parts[2], CultureInfo.InvariantCulture);
        Console.WriteLine($"load: {seconds:F1} s; peak RSS {peak / 1e9:F2} GB (runtime+libtorch before loading {baseline / 1e9:F2} GB)");
        Console.WriteLine($"peak RSS / file size: {(double)peak / file:F2} (loader's share: {(double)(peak - baseline) / file:F2})");
        return 0;
    }

    public static int LoadChild(string dir)
    {
        using (var warm = ones(1)) { }   // load libtorch before the baseline is taken
        var baseline = PeakRss();
        var sw = Stopwatch.StartNew();
        using var llm = LlamaForCausalLM.FromPretrained(dir, dtype: ScalarType.BFloat16);
        var seconds = sw.Elapsed.TotalSeconds;
        Console.WriteLine(FormattableString.Invariant($"{seconds:F2} {baseline} {PeakRss()}"));
        return 0;
    }

    internal static long PeakRss()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("no VmHWM in /proc/self/status");
    }

    public static int Throughput(string[] args)
    {
        var modelDir = args.SkipWhile(a => a != "--model").Skip(1).FirstOrDefault()
                       ?? Path.Combine(RepositoryPaths.FindRoot(), "models", "default");
        using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
        var images = Directory.EnumerateFiles(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images"), "*.jpg")
            .Order(StringComparer.Ordinal).Take(32).Select(f => RasterImage.ReadRgb(f)).ToList();
        Console.WriteLine($"model: {modelDir} (input {encoder.InputSize} px), torch threads {get_num_threads()}");
        foreach (var batch in new[] { 1, 16 })
        {
            encoder.Encode(images.Take(batch).ToList(), true, CancellationToken.None); // warm-up
            var sw = Stopwatch.StartNew();
            int done = 0, tokens = 0;
            while (sw.Elapsed.TotalSeconds < 10 || done < 32)
            {
                var chunk = images.Skip(done % 32).Take(batch).ToList();
                if (chunk.Count < batch) chunk = images.Take(batch).ToList();
                using var _ = no_grad();
                var ids = encoder.Model.GenerateCaptions(encoder.Preprocessor.Process(chunk), encoder.Generation);
                tokens += ids.Sum(i => i.Length + 1);
                done += chunk.Count;
            }
            var s = sw.Elapsed.TotalSeconds;
            Console.WriteLine(FormattableString.Invariant($"greedy captioning, batch {batch,2}: {done / s:F1} images/s, {tokens / s:F0} tokens/s ({done} images in {s:F1} s)"));
        }
        return 0;
    }

    private static double Arg(string[] args, string name, double dflt)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length && double.TryParse(args[i + 1], NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : dflt;
    }
}
