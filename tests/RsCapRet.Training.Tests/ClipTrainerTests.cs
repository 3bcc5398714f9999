using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Training;
using static TorchSharp.torch;

namespace RsCapRet.Training.Tests;

public sealed class ClipTrainerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-clip-");
    public void Dispose() => _dir.Delete(true);

    private static string Ucm => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
    private static string ClipTokenizer => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "tokenizer", "clip");
    private static string TinyA => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "parity", "tiny-a");
    private static string TestData(string f) => Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", f);

    /// <summary>A tiny dual encoder from scratch on a few UCM images: seconds per run.</summary>
    private static ClipTrainConfig Tiny(int? maxSteps, int trainImages, int epochs = 1) => new()
    {
        Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = ClipTokenizer,
        ClipConfig = new ClipConfig
        {
            Text = new ClipTowerConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 49408, MaxPositionEmbeddings = 77 },
            Vision = new ClipTowerConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, ImageSize = 32, PatchSize = 16 },
            ProjectionDim = 16,
        },
        BatchSize = 4, Epochs = epochs, WarmupSteps = 2, MaxSteps = maxSteps, MaxTrainImages = trainImages, MaxValImages = 4,
        Device = "cpu", Threads = 1, CheckpointEvery = 1000, Seed = 7,
    };

    private static Dictionary<string, Tensor> Weights(string checkpointDir)
    {
        using var ckpt = Checkpoint.Open(Path.Combine(checkpointDir, "model.safetensors"));
        return ckpt.TensorNames.ToDictionary(n => n, n => ckpt.Read(n));
    }

    [Fact]
    public void AnEpochRecordsTheUntrainedBaselineAndExportsLoadableCheckpoints()
    {
        var outDir = Path.Combine(_dir.FullName, "run");
        var history = new ClipTrainer(Tiny(maxSteps: null, trainImages: 8), outDir, _ => { }).Run();
        Assert.Equal([0, 1], history.Select(h => h.Epoch));
        Assert.True(double.IsNaN(history[0].TrainLoss));              // epoch 0 is the model before any step
        Assert.True(double.IsFinite(history[1].TrainLoss) && history[1].TrainLoss > 0);
        Assert.Equal(2, history[1].Step);
        foreach (var f in new[] { "history.csv", "training.svg", "checkpoint/state.json", "best/config.json", "best/model.safetensors",
                     "best/vocab.json", "best/merges.txt", "best/vision/config.json", "best/vision/model.safetensors" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), $"{f} missing");

        var best = Path.Combine(outDir, "best");
        Assert.True(ClipEvaluator.IsClipFolder(best));
        Assert.False(ClipEvaluator.IsClipFolder(Path.Combine(best, "vision")));
        // The full export and the vision-only export give the same image embeddings.
        using var clip = ClipModel.FromPretrained(best);
        using var vision = ClipVisionModel.FromPretrained(Path.Combine(best, "vision"));
        using var pixels = randn(2, 3, 32, 32, generator: new TorchSharp.torch.Generator(1));
        using var a = clip.ImageEmbeds(pixels);
        using var output = vision.Forward(pixels);
        Assert.True(a.allclose(output.ImageEmbeds!, rtol: 0, atol: 1e-6));

        // Retrieval evaluation of the export: every val caption ranks every val image.
        var report = ClipEvaluator.Evaluate(best, Ucm, "val", CPU);
        Assert.Equal(210, report.Images);
        Assert.Equal(1050, report.Texts);
        Assert.InRange(report.TextToImage.Mean, 0, 100);
    }

    [Fact]
    public void CrashAndResumeGivesTheSameWeightsAsAnUninterruptedRun()
    {
        var straight = Path.Combine(_dir.FullName, "straight");
        new ClipTrainer(Tiny(maxSteps: 4, trainImages: 16), straight, _ => { }).Run();
        var resumed = Path.Combine(_dir.FullName, "resumed");
        new ClipTrainer(Tiny(maxSteps: 2, trainImages: 16), resumed, _ => { }).Run();
        var log = new List<string>();
        new ClipTrainer(Tiny(maxSteps: 4, trainImages: 16), resumed, log.Add).Run();
        Assert.Contains(log, l => l.StartsWith("resumed from") && l.Contains("step 2"));
        var a = Weights(Path.Combine(straight, "checkpoint"));
        var b = Weights(Path.Combine(resumed, "checkpoint"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        Assert.Contains("logit_scale", a.Keys);
        foreach (var (name, t) in a)
            Assert.True(t.equal(b[name]).all().item<bool>(), $"{name} differs between the straight and the resumed run");
    }

    [Fact]
    public void TheExportedVisionTowerIsRsCapRetsFrozenEncoder()
    {
        var clipRun = Path.Combine(_dir.FullName, "clip");
        new ClipTrainer(Tiny(maxSteps: null, trainImages: 8), clipRun, _ => { }).Run();
        var visionDir = Path.Combine(clipRun, "best", "vision");
        var cfg = new TrainConfig
        {
            Mode = "heads", Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = TestData("ucm-bpe-320.model"),
            Llm = Path.Combine(TinyA, "llama"), Vision = visionDir,
            SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 1, MaxSteps = 1, MaxTrainImages = 8, MaxValImages = 4,
            Device = "cpu", Threads = 1, Seed = 5,
        };
        var outDir = Path.Combine(_dir.FullName, "rscapret");
        new RsCapRetTrainer(cfg, outDir, _ => { }).Run();
        var after = Weights(Path.Combine(outDir, "checkpoint"));
        using var vision = ClipVisionModel.FromPretrained(visionDir);
        foreach (var (name, p) in vision.named_parameters())
            Assert.True(after["vision." + name].equal(p).all().item<bool>(), $"frozen CLIP parameter {name} changed");
    }

    [Theory]
    [InlineData("{\"datasets\": []}", "no datasets")]
    [InlineData("{\"datasets\": [{\"name\": \"u\", \"path\": \"/x\"}]}", "exactly one of 'clip'")]
    [InlineData("{\"datasets\": [{\"name\": \"u\", \"path\": \"/x\"}], \"clip\": \"/c\", \"batch_size\": 1}", "batch_size")]
    [InlineData("{\"datasets\": [{\"name\": \"u\", \"path\": \"/x\"}], \"clip\": \"/c\", \"val_datasets\": [\"v\"]}", "val_datasets names 'v'")]
    public void BadConfigsNameTheFileAndTheProblem(string json, string expected)
    {
        var path = Path.Combine(_dir.FullName, "bad.json");
        File.WriteAllText(path, json);
        var e = Assert.Throws<FormatException>(() => ClipTrainConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains(expected, e.Message);
    }
}
