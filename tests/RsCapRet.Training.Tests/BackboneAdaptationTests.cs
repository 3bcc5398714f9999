using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.TestSupport;
using static TorchSharp.torch;

namespace RsCapRet.Training.Tests;

/// <summary>
/// train-clip with a ResNet vision tower (backbone adaptation): only the last blocks train, the frozen blocks' output
/// is cached, and the export is an ordinary ResNet backbone folder whose frozen part is the original's.
/// </summary>
public sealed class BackboneAdaptationTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-adapt-");
    public void Dispose() => _dir.Delete(true);

    private static string Ucm => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
    private static string ClipTokenizer => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "tokenizer", "clip");

    private static ResNetVisionModel Tiny() => TinyResNet.Create(seed: 5, blocks: [1, 1, 1, 2], source: "test weights");

    private string TinyBackbone() => TinyResNet.Save(Path.Combine(_dir.FullName, "tiny-resnet"), seed: 5, blocks: [1, 1, 1, 2], source: "test weights");

    private ClipTrainConfig Config(string backbone, int trainableBlocks = 2) => new()
    {
        Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = ClipTokenizer, VisionBackbone = backbone, TrainableBlocks = trainableBlocks,
        TextConfig = new ClipTowerConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 49408, MaxPositionEmbeddings = 77 },
        ProjectionDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 2, MaxTrainImages = 8, MaxValImages = 4, LearningRate = 0.01,
        BackboneLearningRate = 0.01, FeatureViews = 2, FeatureCache = Path.Combine(_dir.FullName, "cache"), Device = "cpu", Threads = 1, CheckpointEvery = 1000, Seed = 7,
    };

    [Fact]
    public void TheSplitForwardEqualsTheWholeForward()
    {
        using var resnet = Tiny();
        using var pixels = rand(3, 3, 32, 32, generator: new Generator(2)) * 255;
        using var whole = resnet.Pooled(pixels);
        foreach (var frozen in new[] { 0, 3, 5 })
        {
            using var map = resnet.Through(pixels, frozen);
            using var split = resnet.PooledFrom(map, frozen);
            Assert.True(whole.allclose(split, rtol: 0, atol: 1e-5), $"split after {frozen} blocks");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => resnet.Through(pixels, 6));
    }

    [Fact]
    public void InferenceOnALargeBatchRunsInChunksWithTheSameResult()
    {
        using var resnet = Tiny();
        var n = ResNetVisionModel.InferenceChunk * 2 + 3;
        using var pixels = rand(n, 3, 32, 32, generator: new Generator(4)) * 255;
        using var whole = resnet.Through(pixels, 5).mean([2, 3]);
        using (no_grad())
        {
            using var chunked = resnet.Pooled(pixels);
            Assert.Equal(new long[] { n, 16 }, chunked.shape);
            Assert.True(whole.allclose(chunked, rtol: 0, atol: 1e-5));
        }
    }

    [Fact]
    public void OnlyTheLastBlocksTrainAndTheExportIsABackboneFolder()
    {
        var backbone = TinyBackbone();
        var log = new List<string>();
        var outDir = Path.Combine(_dir.FullName, "run");
        var history = new ClipTrainer(Config(backbone), outDir, log.Add).Run();
        Assert.Equal([0, 1], history.Select(h => h.Epoch));
        Assert.Equal(["ucm"], history[1].ValTextToImageByDataset!.Keys);
        Assert.Contains(log, l => l.Contains("resnet-blocks3 features: 8/8 images × 2 views"));
        Assert.Contains(log, l => l.Contains("last 2 of 5 blocks train"));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(_dir.FullName, "cache"), "resnet-blocks3-*.safetensors").Length);   // train and val

        var exported = Path.Combine(outDir, "best", "vision");
        using var adapted = Assert.IsType<ResNetVisionModel>(VisionBackbones.FromPretrained(exported));
        Assert.Contains("adapted by train-clip", adapted.Config.Source);
        Assert.StartsWith("test weights; ", adapted.Config.Source);
        using var original = Checkpoint.Open(backbone);
        using var after = Checkpoint.Open(exported);
        // Blocks 0-2 (layer1..layer3) and the stem are the original's; the two blocks of layer4 moved.
        foreach (var name in original.TensorNames)
        {
            using var a = original.Read(name);
            using var b = after.Read(name);
            var same = a.shape.SequenceEqual(b.shape) && a.allclose(b, rtol: 0, atol: 0);
            if (name.StartsWith("layer4.") && name.EndsWith("conv1.weight")) Assert.False(same, $"{name} did not train");
            else if (!name.StartsWith("layer4.")) Assert.True(same, $"{name} changed but is frozen");
        }

        // A second run reads the cached maps instead of recomputing them.
        var again = new List<string>();
        new ClipTrainer(Config(backbone), Path.Combine(_dir.FullName, "run2"), again.Add).Run();
        Assert.Contains(again, l => l.StartsWith("resnet-blocks3 features: 8 images × 2 views from"));
    }

    /// <summary>A tiny BERT sentence encoder folder (random weights) whose vocab.txt holds the UCM captions' words.</summary>
    private string TinyTextEncoder(string pooling = "mean", int layers = 1) =>
        RsCapRet.TestSupport.TinyTextEncoder.Save(Path.Combine(_dir.FullName, "tiny-bert"), UcmWords(), pooling, layers);

    public static IEnumerable<string> UcmWords() => RsCapRet.Training.Datasets.KarpathyDataset.Load(Ucm, "ucm").SelectMany(i => i.Captions)
        .SelectMany(c => c.ToLowerInvariant().Split(' ', StringSplitOptions.RemoveEmptyEntries));

    [Theory]
    [InlineData("mean")]   // all-MiniLM-L6-v2
    [InlineData("cls")]    // snowflake-arctic-embed-xs
    public void AFrozenTextEncoderEmbedsEachDistinctCaptionOnceAndStaysFrozen(string pooling)
    {
        var encoder = TinyTextEncoder(pooling);
        var log = new List<string>();
        var cfg = Config(TinyBackbone()) with { TextConfig = null, Tokenizer = null, TextEncoder = encoder };
        cfg.Validate("adapt.json");
        var before = File.ReadAllBytes(Path.Combine(encoder, "model.safetensors"));
        var history = new ClipTrainer(cfg, Path.Combine(_dir.FullName, "run"), log.Add).Run();
        Assert.Equal([0, 1], history.Select(h => h.Epoch));
        Assert.True(history[1].ValTextToImage.Mean > 0);
        // 8 UCM train images of 5 captions each; UCM repeats captions word for word, so fewer distinct ones are embedded.
        var line = Assert.Single(log, l => l.StartsWith("train: ") && l.Contains("distinct captions of 40 embedded"));
        Assert.DoesNotContain("train: 40 distinct", line);
        Assert.Contains(log, l => l.Contains($"frozen text encoder {encoder} ({pooling} pooling)"));
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(encoder, "model.safetensors")));
    }

    [Theory]
    [InlineData("mean")]
    [InlineData("cls")]
    public void TheEncodersLastLayersOverItsKeptHiddenStatesGiveItsSentenceVectors(string pooling)
    {
        using var encoder = BertSentenceEncoder.FromPretrained(TinyTextEncoder(pooling, layers: 3));
        string[] captions = ["many buildings and green trees are around a playground .", "a river .", "some cars are parked in a parking lot near a road ."];
        var (ids, mask) = encoder.Batch(captions);
        using var whole = encoder.Pooled(ids, mask);
        using var top = encoder.TopLayers(2);
        using var _ = no_grad();
        // Each caption's hidden states computed alone (no padding), then padded as a training batch pads them.
        for (var i = 0; i < captions.Length; i++)
        {
            var (one, oneMask) = encoder.Batch([captions[i]]);
            using var hidden = encoder.HiddenAfter(one, oneMask, 1);
            var width = ids.shape[1];
            using var padded = zeros(1, width, encoder.HiddenSize);
            padded.narrow(1, 0, hidden.shape[1]).copy_(hidden);
            using var pooled = top.Pooled(padded, mask.narrow(0, i, 1));
            Assert.True(allclose(pooled, whole.narrow(0, i, 1), rtol: 1e-4, atol: 1e-5), $"caption {i}: {(pooled - whole.narrow(0, i, 1)).abs().max().item<float>()}");
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => encoder.TopLayers(4));
    }

    [Fact]
    public void TheTextEncodersLastLayersTrainWhenAskedAndStartWhereTheFrozenEncoderIs()
    {
        var encoder = TinyTextEncoder(layers: 2);
        var before = File.ReadAllBytes(Path.Combine(encoder, "model.safetensors"));
        var frozen = Config(TinyBackbone()) with { TextConfig = null, Tokenizer = null, TextEncoder = encoder };
        var frozenHistory = new ClipTrainer(frozen, Path.Combine(_dir.FullName, "frozen"), _ => { }).Run();
        var log = new List<string>();
        var training = frozen with { TextEncoderTrainableLayers = 1, TextEncoderLearningRate = 0.01 };
        training.Validate("adapt.json");
        var history = new ClipTrainer(training, Path.Combine(_dir.FullName, "run"), log.Add).Run();
        Assert.Contains(log, l => l.Contains($"text encoder {encoder} (mean pooling), last 1 of 2 layers train ("));
        Assert.Contains(log, l => l.StartsWith("train: ") && l.Contains("distinct captions of 40 through the text encoder's frozen first 1 layers"));
        // Before training both runs rank the same: the kept hidden states through the last layer are the frozen vectors.
        Assert.Equal(frozenHistory[0].ValTextToImage, history[0].ValTextToImage);
        // Then the text layer trains (same seed, same batches: only it differs) and the encoder's folder is untouched.
        Assert.NotEqual(frozenHistory[1].TrainLoss, history[1].TrainLoss);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(encoder, "model.safetensors")));
        var tooMany = Assert.Throws<InvalidOperationException>(() => new ClipTrainer(frozen with { TextEncoderTrainableLayers = 3 }, Path.Combine(_dir.FullName, "x"), _ => { }).Run());
        Assert.Contains("text_encoder_trainable_layers 3", tooMany.Message);
        Assert.Contains("has 2 layers", tooMany.Message);
    }

    [Fact]
    public void TheArcticAdaptationIsTheMiniLmOneWithOnlyTheTextSideChanged()
    {
        var configs = Path.Combine(RepositoryPaths.FindRoot(), "models", "configs");
        var minilm = ClipTrainConfig.Load(Path.Combine(configs, "adapt-resnet18-rs-l3-minilm.json"));
        var arctic = ClipTrainConfig.Load(Path.Combine(configs, "adapt-resnet18-rs-l3-arctic.json"));
        Assert.Equal(Path.Combine(VisionBackbones.BackbonesDirectory(), "snowflake-arctic-embed-xs"), arctic.TextEncoder);
        Assert.Equal(minilm.ToJson(), (arctic with { Name = minilm.Name, TextEncoder = minilm.TextEncoder }).ToJson());
    }

    [Fact]
    public void BadAdaptationConfigsSayWhatIsWrong()
    {
        var path = Path.Combine(_dir.FullName, "adapt.json");
        var good = Config(TinyBackbone());
        var e = Assert.Throws<FormatException>(() => (good with { TextConfig = null }).Validate(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("text_config", e.Message);
        e = Assert.Throws<FormatException>(() => (good with { ClipConfig = new ClipConfig() }).Validate(path));
        Assert.Contains("exactly one of", e.Message);
        e = Assert.Throws<FormatException>(() => (good with { TextEncoder = "backbone:all-minilm-l6-v2" }).Validate(path));
        Assert.Contains("exactly one of 'text_config'", e.Message);
        e = Assert.Throws<FormatException>(() => (good with { VisionBackbone = null, ClipConfig = new ClipConfig(), TextConfig = null, TextEncoder = "x" }).Validate(path));
        Assert.Contains("'text_encoder' belongs with 'vision_backbone'", e.Message);
        e = Assert.Throws<FormatException>(() => (good with { TextEncoderTrainableLayers = 2 }).Validate(path));
        Assert.Contains("'text_encoder_trainable_layers' and 'text_encoder_learning_rate' belong with 'text_encoder'", e.Message);
        var withEncoder = good with { TextConfig = null, Tokenizer = null, TextEncoder = "backbone:all-minilm-l6-v2" };
        e = Assert.Throws<FormatException>(() => (withEncoder with { TextEncoderTrainableLayers = -1 }).Validate(path));
        Assert.Contains("text_encoder_trainable_layers must be 0 or more", e.Message);
        e = Assert.Throws<FormatException>(() => (withEncoder with { TextEncoderLearningRate = 0 }).Validate(path));
        Assert.Contains("text_encoder_learning_rate must be positive", e.Message);
        e = Assert.Throws<FormatException>(() => (good with { TrainableBlocks = 0 }).Validate(path));
        Assert.Contains("trainable_blocks", e.Message);
        var tooMany = Assert.Throws<InvalidOperationException>(() => new ClipTrainer(good with { TrainableBlocks = 6 }, Path.Combine(_dir.FullName, "x"), _ => { }).Run());
        Assert.Contains("has 5 residual blocks", tooMany.Message);
    }
}
