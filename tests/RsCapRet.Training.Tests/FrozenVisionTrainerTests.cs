using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.TestSupport;
using static TorchSharp.torch;

namespace RsCapRet.Training.Tests;

/// <summary>
/// frozen-vision mode on a tiny ResNet backbone: the backbone is loaded, never trained or copied, its pooled vectors
/// are cached once per image and view, and the exported model points at the backbone and loads.
/// </summary>
public sealed class FrozenVisionTrainerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-frozen-");
    public void Dispose() => _dir.Delete(true);

    private static string Ucm => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
    private static string TestData(string f) => Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", f);

    private string TinyBackbone() => TinyResNet.Save(Path.Combine(_dir.FullName, "tiny-resnet"), seed: 5, blocks: [1, 1, 1, 1]);

    private TrainConfig Config(string backbone) => new()
    {
        Mode = "frozen-vision", Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = TestData("ucm-bpe-319.model"), Vision = backbone,
        LlmConfig = new LlamaConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 320, RmsNormEps = 1e-5, MaxPositionEmbeddings = 128 },
        SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 2, MaxSteps = null, MaxTrainImages = 8, MaxValImages = 4,
        Device = "cpu", Threads = 1, CheckpointEvery = 1000, Seed = 3, FeatureViews = 3, FeatureCache = Path.Combine(_dir.FullName, "cache"),
        GsdRange = [0.3, 1.0], Gsd = 0.35,
    };

    [Fact]
    public void TrainsOnCachedVectorsAndExportsAModelThatReferencesTheBackbone()
    {
        var backbone = TinyBackbone();
        var before = File.ReadAllBytes(Path.Combine(backbone, "model.safetensors"));
        var log = new List<string>();
        var outDir = Path.Combine(_dir.FullName, "run");
        var history = new RsCapRetTrainer(Config(backbone), outDir, log.Add).Run();
        Assert.True(double.IsFinite(Assert.Single(history).TrainLoss));
        Assert.Contains(log, l => l.Contains("pooled features: 8/8 images × 3 views"));
        Assert.Equal(2, Directory.GetFiles(Path.Combine(_dir.FullName, "cache"), "pooled-*.safetensors").Length);   // train (3 views) and val (1)

        // The export names the backbone; it holds no copy of it.
        Assert.False(Directory.Exists(Path.Combine(outDir, "best", "vision")));
        var cfg = RsCapRetConfig.Load(Path.Combine(outDir, "best"));
        Assert.Equal(backbone, cfg.Vision);
        Assert.Equal(new TrainingResolution(0.35, 0.3, 1.0), cfg.TrainingResolution);
        using var model = RsCapRetModel.Load(Path.Combine(outDir, "best"));
        Assert.IsType<ResNetVisionModel>(model.Vision);
        Assert.Equal(before, File.ReadAllBytes(Path.Combine(backbone, "model.safetensors")));   // frozen: untouched

        // A second run reads the cache instead of running the backbone again.
        var again = new List<string>();
        new RsCapRetTrainer(Config(backbone), Path.Combine(_dir.FullName, "run2"), again.Add).Run();
        Assert.Equal(2, again.Count(l => l.StartsWith("pooled features:") && l.Contains(" from ")));
    }

    [Fact]
    public void DihedralViewsAreTheEightSymmetriesOfTheSquare()
    {
        using var x = arange(2 * 3 * 4 * 4, dtype: ScalarType.Float32).view(2, 3, 4, 4);
        var views = Enumerable.Range(0, 8).Select(v => PooledFeatureCache.View(x, v)).ToList();
        for (var a = 0; a < 8; a++)
            for (var b = a + 1; b < 8; b++)
                Assert.False(views[a].eq(views[b]).all().item<bool>(), $"views {a} and {b} are the same");
        Assert.True(views[0].eq(x).all().item<bool>());
    }
}
