using System.Text.Json;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Training;

/// <summary>Pieces every trainer here shares: decoded image splits, batch order, learning-rate schedule, augmentation, checkpoints.</summary>
public static class TrainingRun
{
    /// <summary>Every image of the split decoded and preprocessed once, as one [N, 3, S, S] tensor.</summary>
    public static Tensor DecodeImages(IReadOnlyList<CaptionedImage> images, ImagePreprocessor pre)
    {
        var pixels = empty(images.Count, 3, pre.Size, pre.Size);
        Parallel.For(0, images.Count, new ParallelOptions { MaxDegreeOfParallelism = 2 }, i =>
        {
            using var scope = NewDisposeScope();
            pixels[i].copy_(pre.Process(RasterImage.ReadRgb(images[i].ImagePath)));
        });
        return pixels;
    }

    /// <summary>The images of the named split of several datasets, optionally only the first <paramref name="limit"/>.</summary>
    public static IReadOnlyList<CaptionedImage> LoadSplit(IEnumerable<DatasetRef> datasets, string split, int? limit)
    {
        var images = KarpathyDataset.Merge(datasets.Select(d => (d.Name, d.Path)), new HashSet<string> { split });
        if (limit is { } max) images = images.Take(max).ToList();
        if (images.Count == 0) throw new InvalidOperationException($"No '{split}' images in the configured datasets.");
        return images;
    }

    /// <summary>The datasets whose val split selects the model: those named in <paramref name="names"/>, or all.</summary>
    public static IReadOnlyList<DatasetRef> ValidationDatasets(IReadOnlyList<DatasetRef> datasets, string[]? names) =>
        names is null ? datasets : datasets.Where(d => names.Contains(d.Name)).ToList();

    /// <summary>The epoch's image order: a pure function of the seed, so a resumed run sees the same batches.</summary>
    /// <summary>
    /// The seed of one step's random draws (augmentation, captions, pairings): a fixed mix of the run seed and the
    /// step. Not HashCode.Combine, whose seed changes with every process: a resumed or repeated run would draw
    /// differently from the original.
    /// </summary>
    public static int StepSeed(int seed, int step)
    {
        var z = unchecked(((ulong)(uint)seed << 32 | (uint)step) + 0x9E3779B97F4A7C15UL);   // SplitMix64 finaliser
        z = unchecked((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL);
        z = unchecked((z ^ (z >> 27)) * 0x94D049BB133111EBUL);
        return (int)((z ^ (z >> 31)) & 0x7FFFFFFF);
    }

    public static int[] Permutation(int n, int seed)
    {
        var rng = new Random(seed);
        var a = Enumerable.Range(0, n).ToArray();
        rng.Shuffle(a);
        return a;
    }

    /// <summary>
    /// A permutation whose consecutive runs of <paramref name="group"/> indices share a class (class-aware hard
    /// negatives): each class's indices are shuffled and cut into runs, and the runs shuffled; a class's last short
    /// run and indices without a class (null) are runs of their own. A pure function of (classes, group, seed).
    /// </summary>
    public static int[] ClassGroupedPermutation(IReadOnlyList<string?> classes, int group, int seed)
    {
        var rng = new Random(seed);
        var runs = new List<int[]>();
        foreach (var members in Enumerable.Range(0, classes.Count).GroupBy(i => classes[i]).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var a = members.ToArray();
            rng.Shuffle(a);
            if (members.Key is null) runs.AddRange(a.Select(i => new[] { i }));
            else runs.AddRange(a.Chunk(group));
        }
        var order = runs.ToArray();
        rng.Shuffle(order);
        return order.SelectMany(r => r).ToArray();
    }

    /// <summary>Linear warm-up, then constant or cosine decay to <paramref name="minRatio"/> × lr at <paramref name="totalSteps"/>.</summary>
    public static double LearningRate(int step, double lr, int warmupSteps, string schedule, double minRatio, int totalSteps)
    {
        var warm = Math.Min(1.0, (step + 1.0) / Math.Max(1, warmupSteps));
        if (schedule != "cosine" || step < warmupSteps) return lr * warm;
        var progress = Math.Min(1.0, (step - warmupSteps) / (double)Math.Max(1, totalSteps - warmupSteps));
        return lr * (minRatio + (1 - minRatio) * 0.5 * (1 + Math.Cos(Math.PI * progress)));
    }

    /// <summary>
    /// Overhead imagery has no up: random flips and 90° rotations per image, and, when <paramref name="minCropScale"/>
    /// is below 1, a random square crop of that area fraction or more, resized back (scale changes within a scene).
    /// </summary>
    public static Tensor AugmentOverhead(Tensor pixels, Random rng, double minCropScale = 1.0)
    {
        var size = pixels.shape[2];
        var outs = new List<Tensor>();
        for (var i = 0; i < pixels.shape[0]; i++)
        {
            var x = pixels[i];
            if (minCropScale < 1)
            {
                var side = (long)Math.Round(size * Math.Sqrt(minCropScale + rng.NextDouble() * (1 - minCropScale)));
                if (side < size)
                {
                    long y0 = rng.NextInt64(size - side + 1), x0 = rng.NextInt64(size - side + 1);
                    x = F.interpolate(x.narrow(1, y0, side).narrow(2, x0, side).unsqueeze(0), [size, size],
                        mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);
                }
            }
            if (rng.Next(2) == 1) x = x.flip(2);
            var k = rng.Next(4);
            if (k > 0) x = x.rot90(k, (1, 2));
            outs.Add(x);
        }
        return stack(outs);
    }

    // NaN marks "no value" in run histories (the loss of the epoch-0 baseline).
    private static readonly JsonSerializerOptions StateJson = new() { NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Weights, optimiser state and run state, written to a temporary folder and swapped in, so a crash mid-write keeps the last one.</summary>
    public static void SaveCheckpoint<TState>(string dir, nn.Module model, OptimizerHelper optimizer, TState state)
    {
        var tmp = dir + ".tmp";
        if (Directory.Exists(tmp)) Directory.Delete(tmp, true);
        Directory.CreateDirectory(tmp);
        SafetensorsWriter.Write(Path.Combine(tmp, "model.safetensors"), model.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));
        optimizer.save_state_dict(Path.Combine(tmp, "optimizer.bin"));
        File.WriteAllText(Path.Combine(tmp, "state.json"), JsonSerializer.Serialize(state, StateJson));
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        Directory.Move(tmp, dir);
    }

    /// <summary>Loads a checkpoint written by <see cref="SaveCheckpoint{TState}"/> into the model and optimiser; null when there is none.</summary>
    public static TState? TryResume<TState>(string dir, nn.Module model, OptimizerHelper optimizer) where TState : class
    {
        var stateFile = Path.Combine(dir, "state.json");
        if (!File.Exists(stateFile)) return null;
        var state = JsonSerializer.Deserialize<TState>(File.ReadAllText(stateFile), StateJson)
            ?? throw new InvalidDataException($"{stateFile}: empty training state");
        using (var ckpt = Checkpoint.Open(Path.Combine(dir, "model.safetensors"))) ckpt.LoadInto(model);
        optimizer.load_state_dict(Path.Combine(dir, "optimizer.bin"));
        return state;
    }

    /// <summary>A [texts, images] similarity tensor as the float matrix the retrieval metrics take.</summary>
    public static float[,] ToMatrix(Tensor similarity)
    {
        var sim = similarity.cpu().to_type(ScalarType.Float32).contiguous();
        var matrix = new float[sim.shape[0], sim.shape[1]];
        var flat = sim.data<float>().ToArray();
        Buffer.BlockCopy(flat, 0, matrix, 0, flat.Length * sizeof(float));
        return matrix;
    }
}
