using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Onnx;
using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Import;
using RsCapRet.Raster;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Bench;

/// <summary>
/// The project's vision encoder against ONNX Runtime on the same images and the same weights: the TorchSharp
/// ResNet (imported from the ONNX file) and ONNX Runtime running that original file (its preprocessing graph,
/// then the network), at each batch size, with the same thread count, the sides taking turns within every round.
/// --diagnose adds variants that say where a gap comes from: the TorchSharp graph with batch norm folded into
/// the convolutions, channels-last layout, one forward over a large batch (Pooled runs inference in chunks of 16), and ONNX Runtime without its graph
/// optimisations or one image per call. Every side also reports its minor page faults per image.
/// </summary>
public static class EncoderBenchmark
{
    private const string TorchSide = "torchsharp";
    private const string OrtSide = "onnxruntime";
    /// <summary>The issue's goal: TorchSharp at least this fraction of ONNX Runtime's images/s.</summary>
    private const double Goal = 0.8;

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var backboneDir = a.String("--backbone", Path.Combine(VisionBackbones.BackbonesDirectory(), "resnet18-imagenet"));
        var batches = a.Ints("--batches", "1,16,64");
        var threadCounts = a.Ints("--threads", "2");
        var roundSeconds = a.Double("--round-seconds", 3);
        var diagnose = a.Has("--diagnose");
        var (warmup, rounds) = a.RoundCounts();

        using var model = VisionBackbones.FromPretrained(backboneDir) as ResNetVisionModel
                          ?? throw new InvalidOperationException($"{backboneDir}: not a ResNet backbone; the ONNX comparison needs one imported from ONNX");
        if (!ResNetOnnxImporter.Sources.TryGetValue(model.Architecture, out var source))
            throw new InvalidOperationException($"{backboneDir}: architecture '{model.Architecture}' has no ONNX original (known: {string.Join(", ", ResNetOnnxImporter.Sources.Keys)})");
        var onnxPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.ModelFile);
        var prepPath = NuGetPackages.File(source.PackageId, source.PackageVersion, source.PreprocessFile);

        // The same pixels for both sides: UCM images, planar RGB 0..255 at the model's size, whole numbers as a
        // decoded image has them. Prepared once, off every clock.
        var size = model.ImageSize;
        var files = Directory.EnumerateFiles(Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions", "images"), "*.jpg")
            .Order(StringComparer.Ordinal).Take(batches.Max()).ToList();
        var images = Enumerable.Range(0, batches.Max()).Select(i => RasterImage.ReadRgb(files[i % files.Count])).ToList();
        using var all = model.Preprocessor().Process(images).round().contiguous();

        // The file's input is declared with batch 1; the same graph with a symbolic batch runs a batch per call.
        var (batchedPrep, batchedNet, batchedNote) = BatchedGraphs(prepPath, onnxPath);
        byte[] prepBytes = File.ReadAllBytes(prepPath), netBytes = File.ReadAllBytes(onnxPath);
        // ONNX Runtime fixes its thread pool per session: one set of sessions per thread count.
        var disposables = new List<IDisposable>();
        T Keep<T>(T d) where T : IDisposable { disposables.Add(d); return d; }
        try
        {
            var sessions = threadCounts.ToDictionary(t => t, t =>
            {
                var optimised = Keep(OrtOptions(t, GraphOptimizationLevel.ORT_ENABLE_ALL));
                var plain = Keep(OrtOptions(t, GraphOptimizationLevel.ORT_DISABLE_ALL));
                var original = Keep(new OrtPair(prepBytes, netBytes, optimised));
                return (Batched: batchedNet is null ? null : Keep(new OrtPair(batchedPrep!, batchedNet, optimised)), Original: original,
                        Unoptimised: diagnose && batchedNet is not null ? Keep(new OrtPair(batchedPrep!, batchedNet, plain)) : null);
            });
            var folded = diagnose ? Keep(new FoldedResNet(model)) : null;

            var env = await BenchEnvironment.CollectAsync(torch: true);
            env.Add("ONNX Runtime", OrtEnv.Instance().GetVersionString());
            var report = new BenchReport("encoder", env);
            report.Options["backbone"] = Path.GetFullPath(backboneDir);
            report.Options["batches"] = string.Join(',', batches);
            report.Options["threads"] = string.Join(',', threadCounts);
            report.Options["round-seconds"] = roundSeconds;
            report.Options["diagnose"] = diagnose;
            report.Facts.Add(("weights", $"{backboneDir} (imported from {source.Describe}); ONNX Runtime runs {onnxPath} after {Path.GetFileName(prepPath)}"));
            report.Facts.Add(("ONNX Runtime batching", batchedNote));
            report.Facts.Add(("dtype", $"TorchSharp {model.parameters().First().dtype}, ONNX float32 (the file's initializers); both take float32 pixels"));
            report.Facts.Add(("threads", $"a side's tN is its thread count: torch intra-op N (OpenMP; interop {get_num_interop_threads()}), ONNX Runtime intra-op N, inter-op 1, sequential execution"));

            // Same output, or the comparison means nothing: both sides on the first batch.
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var first = sessions[threadCounts[0]];
                var x = all.narrow(0, 0, batches[0]).contiguous();
                var ours = model.Pooled(x);
                var theirs = (first.Batched ?? first.Original).Pooled(OrtPair.Input(x), perImage: first.Batched is null);
                report.Facts.Add(($"max |torchsharp - onnxruntime| over batch {batches[0]}", ours.sub(theirs).abs().max().item<float>().ToString("G3", System.Globalization.CultureInfo.InvariantCulture)));
                if (folded is not null)
                {
                    report.Facts.Add(("max |BN folded - torchsharp|", folded.Pooled(x, channelsLast: false).sub(ours).abs().max().item<float>().ToString("G3", System.Globalization.CultureInfo.InvariantCulture)));
                    folded.Pooled(x, channelsLast: true);
                    report.Facts.Add(("BN folded + channels-last: last feature map channels-last", folded.LastRunChannelsLast ? "yes" : "no (libtorch returned NCHW)"));
                }
            }

            var sides = new List<Side>();
            var ratios = new List<RatioSpec>();
            var headline = new List<(string Torch, string Ort)>();
            foreach (var t in threadCounts)
                foreach (var b in batches)
                {
                    var ort = sessions[t];
                    var x = all.narrow(0, 0, b).contiguous();
                    var xOrt = OrtPair.Input(x);
                    string tag = $"b{b} t{t}", ts = $"{TorchSide} {tag}", os = $"{OrtSide} {tag}";
                    sides.Add(ImagesPerSecond(ts, b, t, roundSeconds, () => model.Pooled(x)));
                    sides.Add(ImagesPerSecond(os, b, t, roundSeconds, () => (ort.Batched ?? ort.Original).Pooled(xOrt, perImage: ort.Batched is null)));
                    ratios.Add(new RatioSpec(ts, os));
                    headline.Add((ts, os));
                    if (!diagnose) continue;
                    // Layout: the same module fed an input whose memory is NHWC (libtorch's channels-last convolutions follow it).
                    var xcl = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
                    AddVariant($"{TorchSide} channels-last input {tag}", ts, () => model.Pooled(xcl));
                    // Fusion: batch norm folded into the convolutions, ReLU and the residual add in place (what ORT's optimiser does).
                    AddVariant($"{TorchSide} BN folded {tag}", ts, () => folded!.Pooled(x, channelsLast: false));
                    AddVariant($"{TorchSide} BN folded + channels-last {tag}", ts, () => folded!.Pooled(x, channelsLast: true));
                    // Allocation: Pooled runs inference in chunks of ResNetVisionModel.InferenceChunk images, whose
                    // activations stay below glibc's largest heap-served block (32 MB); this variant is one forward
                    // over the whole batch, whose larger activations are mmap-ed and faulted in on every forward.
                    if (b > ResNetVisionModel.InferenceChunk) AddVariant($"{TorchSide} one forward over the batch {tag}", ts, () => model.Through(x, model.ResidualBlocks.Count).mean([2, 3]));
                    if (ort.Unoptimised is { } unoptimised) AddVariant($"{OrtSide} no graph optimisation {tag}", os, () => unoptimised.Pooled(xOrt, perImage: false));
                    if (b > 1 && ort.Batched is not null) AddVariant($"{OrtSide} original file, 1 image per call {tag}", os, () => ort.Original.Pooled(xOrt, perImage: true));

                    void AddVariant(string name, string baseline, Func<Tensor> forward)
                    {
                        sides.Add(ImagesPerSecond(name, b, t, roundSeconds, forward));
                        ratios.Add(new RatioSpec(name, baseline));
                    }
                }

            Console.WriteLine($"encoder: {model.Architecture} at {size} px, batches {string.Join(',', batches)}, threads {string.Join(',', threadCounts)}, >= {roundSeconds} s per side per round");
            var results = await Rounds.RunAsync(sides, warmup, rounds);
            foreach (var (ts, os) in headline)
            {
                var r = BenchReport.Ratio(results, new RatioSpec(ts, os));
                var verdict = r.Min >= Goal ? "met" : r.Max < Goal ? "not met" : r.Median >= Goal ? "met at the median, not in every round" : "not met at the median";
                report.Facts.Add(($"goal {ts} >= {Goal}x {os}", FormattableString.Invariant($"{verdict} (median {r.Median:F2}, rounds {r.Min:F2} .. {r.Max:F2})")));
            }
            if (!diagnose) report.Notes.Add("where a gap comes from: run again with --diagnose (BN folding, channels-last layout, ONNX Runtime without graph optimisation or one image per call) and --threads 1,2 (threading apart from per-core speed)");
            report.Notes.Add("libtorch's OpenMP threads spin while they wait (OMP_WAIT_POLICY, in the environment line): on a machine whose cores are busy elsewhere that spinning can cost more than the work; compare a run with OMP_WAIT_POLICY=PASSIVE");
            report.Print(results, ratios, warmup, rounds);
        }
        finally
        {
            foreach (var d in Enumerable.Reverse(disposables)) d.Dispose();
        }
        return 0;
    }

    private static Side ImagesPerSecond(string name, int batch, int threads, double roundSeconds, Func<Tensor> forward) =>
        new(name, "images/s", () =>
        {
            // Sides differ in thread count, and grad mode is per thread in libtorch: both set on the thread that measures.
            torch.set_num_threads(threads);
            using var noGrad = no_grad();
            var faults = BenchEnvironment.MinorPageFaults();
            var (perSecond, images, _) = Rounds.Throughput(() =>
            {
                using var scope = NewDisposeScope();
                forward();
                return batch;
            }, roundSeconds);
            // Minor page faults: memory the allocator hands back to the kernel and takes again, zeroed, on every forward.
            var faultsPerImage = (BenchEnvironment.MinorPageFaults() - faults) / (double)images;
            return Task.FromResult(new Sample(perSecond, [new Metric("minor page faults per image", "faults", faultsPerImage)]));
        });

    private static SessionOptions OrtOptions(int threads, GraphOptimizationLevel level) => new()
    {
        IntraOpNumThreads = threads,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = level,
    };

    /// <summary>The preprocessing and network graphs with their leading dimension made symbolic; nothing else changes.</summary>
    private static (byte[]? Prep, byte[]? Net, string Note) BatchedGraphs(string prepPath, string onnxPath)
    {
        try
        {
            byte[] Batched(string path)
            {
                var m = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
                m.Graph.SetDim();
                return m.ToByteArray();
            }
            return (Batched(prepPath), Batched(onnxPath), "one call per batch: the file's graphs with the batch dimension made symbolic (OnnxSharp SetDim), weights and nodes unchanged");
        }
        catch (Exception e) when (e is InvalidProtocolBufferException or InvalidOperationException or ArgumentException)
        {
            return (null, null, $"one call per image: a batched graph is not available ({e.Message})");
        }
    }

    /// <summary>ONNX Runtime sessions for the preprocessing graph and the network, chained without copying the middle tensor out.</summary>
    private sealed class OrtPair : IDisposable
    {
        private readonly InferenceSession _prep, _net;
        private readonly string _prepIn, _prepOut, _netIn, _netOut;
        private readonly RunOptions _run = new();

        public OrtPair(byte[] prep, byte[] net, SessionOptions options)
        {
            _prep = new InferenceSession(prep, options);
            _net = new InferenceSession(net, options);
            (_prepIn, _prepOut) = (_prep.InputMetadata.Keys.Single(), _prep.OutputMetadata.Keys.Single());
            (_netIn, _netOut) = (_net.InputMetadata.Keys.Single(), _net.OutputMetadata.Keys.Single());
        }

        /// <summary>Pixels [B, 3, S, S] copied out of torch once, off the clock, as ONNX Runtime reads them.</summary>
        public sealed record Pixels(float[] Data, long[] Shape);

        public static Pixels Input(Tensor pixels) => new(pixels.contiguous().data<float>().ToArray(), pixels.shape);

        /// <summary>Pooled features [B, 512]: one call for the batch, or one per image.</summary>
        public Tensor Pooled(Pixels pixels, bool perImage)
        {
            var (data, dims) = (pixels.Data, pixels.Shape);
            var b = (int)dims[0];
            var per = data.Length / b;
            var output = new float[b * 512];
            var chunk = perImage ? 1 : b;
            for (var i = 0; i < b; i += chunk)
            {
                long[] shape = [chunk, dims[1], dims[2], dims[3]];
                using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, data.AsMemory(i * per, chunk * per), shape);
                using var prepped = _prep.Run(_run, [_prepIn], [input], [_prepOut]);
                using var pooled = _net.Run(_run, [_netIn], [prepped.Single()], [_netOut]);
                var span = pooled.Single().GetTensorDataAsSpan<float>();
                if (span.Length != chunk * 512) throw new InvalidOperationException($"ONNX Runtime returned {span.Length} values for {chunk} images (512 each expected)");
                span.CopyTo(output.AsSpan(i * 512));
            }
            return tensor(output, [b, 512]);
        }

        public void Dispose()
        {
            _prep.Dispose();
            _net.Dispose();
            _run.Dispose();
        }
    }

    /// <summary>
    /// A diagnostic copy of the ResNet's forward pass with each frozen batch norm folded into the convolution before
    /// it (weight * gamma / sqrt(var + eps), bias beta - mean * gamma / sqrt(var + eps)) and ReLU and the residual add
    /// done in place: the work ONNX Runtime's graph optimiser saves. Checked against the module's own output.
    /// </summary>
    private sealed class FoldedResNet : IDisposable
    {
        private readonly ResNetVisionModel _model;
        private readonly Dictionary<string, (Tensor W, Tensor B)> _convs = new();
        private readonly ResNetConfig _cfg;
        public bool LastRunChannelsLast { get; private set; }

        public FoldedResNet(ResNetVisionModel model)
        {
            using var noGrad = no_grad();
            _model = model;
            _cfg = model.Config;
            var state = model.StateTensors().ToDictionary(t => t.Name, t => t.Tensor);
            void Fold(string conv, string bn)
            {
                var scale = state[$"{bn}.weight"] / (state[$"{bn}.running_var"] + _cfg.BatchNormEps).sqrt();
                _convs[conv] = ((state[$"{conv}.weight"] * scale.view(-1, 1, 1, 1)).contiguous().DetachFromDisposeScope(),
                    (state[$"{bn}.bias"] - state[$"{bn}.running_mean"] * scale).DetachFromDisposeScope());
            }
            Fold("conv1", "bn1");
            for (var s = 0; s < 4; s++)
                for (var b = 0; b < _cfg.Blocks[s]; b++)
                {
                    var p = $"layer{s + 1}.{b}";
                    Fold($"{p}.conv1", $"{p}.bn1");
                    Fold($"{p}.conv2", $"{p}.bn2");
                    if (state.ContainsKey($"{p}.downsample_conv.weight")) Fold($"{p}.downsample_conv", $"{p}.downsample_bn");
                }
        }

        private static long[] Pad(int[] onnx) => [onnx[1], onnx[3], onnx[0], onnx[2]];

        private Tensor Conv(Tensor x, string name, long stride, long padding)
        {
            var (w, b) = _convs[name];
            return F.conv2d(x, w, b, strides: [stride, stride], padding: [padding, padding]);
        }

        public Tensor Pooled(Tensor rgb255, bool channelsLast)
        {
            using var scope = NewDisposeScope();
            var x = _model.Normalise(rgb255);
            if (channelsLast) x = x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2);
            x = Conv(F.pad(x, Pad(_cfg.StemPadding)), "conv1", 2, 0).relu_();
            x = F.max_pool2d(F.pad(x, Pad(_cfg.PoolPadding), value: double.NegativeInfinity), 3, 2);
            for (var s = 0; s < 4; s++)
                for (var b = 0; b < _cfg.Blocks[s]; b++)
                {
                    var p = $"layer{s + 1}.{b}";
                    var stride = b == 0 && s > 0 ? 2 : 1;
                    var h = stride == 1 ? Conv(x, $"{p}.conv1", 1, 1) : Conv(F.pad(x, Pad(_cfg.DownsamplePadding)), $"{p}.conv1", 2, 0);
                    h = Conv(h.relu_(), $"{p}.conv2", 1, 1);
                    var shortcut = _convs.ContainsKey($"{p}.downsample_conv") ? Conv(x, $"{p}.downsample_conv", stride, 0) : x;
                    x = h.add_(shortcut).relu_();
                }
            // NCHW strides are (C*H*W, H*W, W, 1); channels-last ones have channel stride 1.
            LastRunChannelsLast = x.stride(1) == 1 && x.shape[1] > 1;
            return x.mean([2, 3]).MoveToOuterDisposeScope();
        }

        public void Dispose()
        {
            foreach (var (w, b) in _convs.Values)
            {
                w.Dispose();
                b.Dispose();
            }
        }
    }
}
