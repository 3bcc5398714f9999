using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Training;
using static TorchSharp.torch;

namespace RsCapRet.Training.Tests;

public sealed class TrainerTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-train-");
    public void Dispose() => _dir.Delete(true);

    private static string Ucm => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
    private static string TestData(string f) => Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", f);
    private static string TinyA => Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "parity", "tiny-a");

    /// <summary>A tiny from-scratch model on a few UCM images: seconds per run.</summary>
    private static TrainConfig TinyFull(int maxSteps, int trainImages) => new()
    {
        Mode = "full", Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = TestData("ucm-bpe-319.model"),
        LlmConfig = new LlamaConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 320, RmsNormEps = 1e-5, MaxPositionEmbeddings = 128 },
        VisionConfig = new ClipTowerConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, ImageSize = 32, PatchSize = 16 },
        SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 2, MaxSteps = maxSteps, MaxTrainImages = trainImages, MaxValImages = 4,
        Device = "cpu", Threads = 1, CheckpointEvery = 1000, Seed = 3,
    };

    private static Dictionary<string, Tensor> Weights(string checkpointDir)
    {
        using var ckpt = Checkpoint.Open(Path.Combine(checkpointDir, "model.safetensors"));
        return ckpt.TensorNames.ToDictionary(n => n, n => ckpt.Read(n));
    }

    [Fact]
    public void TwoStepSmokeRunTrainsExportsAndReports()
    {
        var outDir = Path.Combine(_dir.FullName, "smoke");
        var history = new RsCapRetTrainer(TinyFull(maxSteps: 2, trainImages: 8), outDir, _ => { }).Run();
        var epoch = Assert.Single(history);
        Assert.True(double.IsFinite(epoch.TrainLoss) && epoch.TrainLoss > 0);
        Assert.Equal(2, epoch.Step);
        foreach (var f in new[] { "history.csv", "training.svg", "checkpoint/model.safetensors", "checkpoint/optimizer.bin", "best/rscapret.json", "best/heads.safetensors", "best/llm/config.json", "best/vision/model.safetensors" })
            Assert.True(File.Exists(Path.Combine(outDir, f)), $"{f} missing");
        using var model = RsCapRetModel.Load(Path.Combine(outDir, "best"));   // the export loads as a model folder
        Assert.Equal(16, model.SharedDim);
    }

    [Fact]
    public void CaptionGroupsChangeTheContrastiveTargetOnUcmImagesThatShareCaptions()
    {
        // UCM's first training images are one class whose captions repeat across images; one step of one batch.
        var log = new List<string>();
        var grouped = new RsCapRetTrainer(TinyFull(maxSteps: 1, trainImages: 16) with { BatchSize = 16, CaptionGroupsArePositives = true }, Path.Combine(_dir.FullName, "grouped"), log.Add).Run();
        var groupLine = Assert.Single(log, l => l.StartsWith("caption groups"));
        var groups = int.Parse(groupLine.Split(": ")[1].Split(' ')[0]);
        Assert.InRange(groups, 1, 15);   // some of the 16 images were linked
        var plain = new RsCapRetTrainer(TinyFull(maxSteps: 1, trainImages: 16) with { BatchSize = 16 }, Path.Combine(_dir.FullName, "plain"), _ => { }).Run();
        Assert.Equal(plain[0].CaptionLoss, grouped[0].CaptionLoss, 6);   // same batch, same captions
        Assert.NotEqual(plain[0].ContrastiveLoss, grouped[0].ContrastiveLoss);
    }

    /// <summary>
    /// Step seeds are fixed numbers, the same in every process (values from an independent SplitMix64 in Python):
    /// the in-process resume test below cannot see a per-process hash (HashCode.Combine), which made a run resumed
    /// in a new process draw different crops and captions.
    /// </summary>
    [Fact]
    public void StepSeedsAreTheSameInEveryProcess()
    {
        Assert.Equal(1051451323, TrainingRun.StepSeed(42, 0));
        Assert.Equal(1616377404, TrainingRun.StepSeed(42, 1));
        Assert.Equal(284740553, TrainingRun.StepSeed(42, 1170));
        Assert.Equal(158151163, TrainingRun.StepSeed(3, 0));
    }

    [Fact]
    public void ClassGroupedPermutationIsAPermutationOfRunsOfOneClass()
    {
        // Three interleaved classes (8, 7 and 7 images) and 4 images without a class.
        string?[] names = ["a", "b", "c"];
        var classes = Enumerable.Range(0, 26).Select(i => i < 22 ? names[i % 3] : null).ToArray();
        var order = TrainingRun.ClassGroupedPermutation(classes, 4, seed: 7);
        Assert.Equal(Enumerable.Range(0, 26), order.Order());
        Assert.Equal(order, TrainingRun.ClassGroupedPermutation(classes, 4, seed: 7));
        Assert.NotEqual(order, TrainingRun.ClassGroupedPermutation(classes, 4, seed: 8));

        // A class of n images lies in at most ceil(n / 4) maximal blocks (its runs, adjacent ones merged);
        // a plain shuffle scatters it over many more.
        foreach (var cls in names)
        {
            var blocks = order.Where((i, k) => classes[i] == cls && (k == 0 || classes[order[k - 1]] != cls)).Count();
            var n = classes.Count(c => c == cls);
            Assert.InRange(blocks, 1, (n + 3) / 4);
        }
    }

    [Fact]
    public void CrashAndResumeGivesTheSameWeightsAsAnUninterruptedRun()
    {
        var straight = Path.Combine(_dir.FullName, "straight");
        new RsCapRetTrainer(TinyFull(maxSteps: 4, trainImages: 16), straight, _ => { }).Run();
        var resumed = Path.Combine(_dir.FullName, "resumed");
        new RsCapRetTrainer(TinyFull(maxSteps: 2, trainImages: 16), resumed, _ => { }).Run();   // "crash" after step 2
        var log = new List<string>();
        new RsCapRetTrainer(TinyFull(maxSteps: 4, trainImages: 16), resumed, log.Add).Run();    // same command again
        Assert.Contains(log, l => l.StartsWith("resumed from") && l.Contains("step 2"));
        var a = Weights(Path.Combine(straight, "checkpoint"));
        var b = Weights(Path.Combine(resumed, "checkpoint"));
        Assert.Equal(a.Keys.Order(), b.Keys.Order());
        foreach (var (name, t) in a)
            Assert.True(t.equal(b[name]).all().item<bool>(), $"{name} differs between the straight and the resumed run");
    }

    [Fact]
    public void PaperRecipeTrainsOnlyHeadsAndTheRetRows()
    {
        var cfg = new TrainConfig
        {
            Mode = "heads", Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = TestData("ucm-bpe-320.model"),
            Llm = Path.Combine(TinyA, "llama"), Vision = Path.Combine(TinyA, "clip-vision"),
            SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 1, MaxSteps = 2, MaxTrainImages = 8, MaxValImages = 4,
            Device = "cpu", Threads = 1, Seed = 5,
        };
        var outDir = Path.Combine(_dir.FullName, "heads");
        new RsCapRetTrainer(cfg, outDir, _ => { }).Run();
        var after = Weights(Path.Combine(outDir, "checkpoint"));
        using var llm = LlamaForCausalLM.FromPretrained(cfg.Llm!);
        using var vision = ClipVisionModel.FromPretrained(cfg.Vision!);
        const int ret = 320; // appended after the 320 pieces
        foreach (var (name, p) in llm.named_parameters())
        {
            var trained = after["llm." + name];
            if (name is "model.embed_tokens.weight" or "lm_head.weight")
            {
                Assert.True(trained.narrow(0, 0, ret).equal(p).all().item<bool>(), $"{name}: rows other than [RET] changed");
                Assert.Equal(ret + 1, trained.shape[0]);
                // [RET] started as the mean of the other rows and has learnt since.
                Assert.False(trained[ret].allclose(p.mean([0]), 1e-7, 1e-7), $"{name}: the [RET] row did not train");
            }
            else Assert.True(trained.equal(p).all().item<bool>(), $"frozen LLM parameter {name} changed");
        }
        foreach (var (name, p) in vision.named_parameters())
            Assert.True(after["vision." + name].equal(p).all().item<bool>(), $"frozen vision parameter {name} changed");
        Assert.Contains(after.Keys, k => k.StartsWith("heads."));
    }

    [Fact]
    public void PaperRecipeInBf16KeepsBackbonesInBf16AndFrozenAndTheHeadsInFloat32()
    {
        var cfg = new TrainConfig
        {
            Mode = "heads", Datasets = [new DatasetRef("ucm", Ucm)], Tokenizer = TestData("ucm-bpe-320.model"),
            Llm = Path.Combine(TinyA, "llama"), Vision = Path.Combine(TinyA, "clip-vision"), Precision = "bf16",
            SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 1, MaxSteps = 2, MaxTrainImages = 8, MaxValImages = 4,
            Device = "cpu", Threads = 1, Seed = 5,
        };
        var outDir = Path.Combine(_dir.FullName, "heads-bf16");
        var log = new List<string>();
        var history = new RsCapRetTrainer(cfg, outDir, log.Add).Run();
        Assert.Contains("precision: bf16 backbones, float32 heads", log);
        var after = Weights(Path.Combine(outDir, "checkpoint"));
        using var vision = ClipVisionModel.FromPretrained(cfg.Vision!);
        foreach (var (name, p) in vision.named_parameters())
        {
            Assert.Equal(ScalarType.BFloat16, after["vision." + name].dtype);
            Assert.True(after["vision." + name].equal(p.to_type(ScalarType.BFloat16)).all().item<bool>(), $"frozen vision parameter {name} changed");
        }
        Assert.All(after.Where(kv => kv.Key.StartsWith("heads.")), kv => Assert.Equal(ScalarType.Float32, kv.Value.dtype));
        Assert.Equal(ScalarType.BFloat16, after["llm.model.embed_tokens.weight"].dtype);
        Assert.Throws<FormatException>(() => (cfg with { Mode = "full", LlmConfig = new LlamaConfig(), VisionConfig = new ClipTowerConfig() }).Validate("cfg.json"));
    }
}
