using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.TestSupport;
using TorchSharp;

namespace RsCapRet.Training.Tests;

/// <summary>
/// Dialogue training (issue 34) on a tiny frozen backbone: a run continues a trained model folder (init_from) with
/// every sequence a generated dialogue, its [RET] answers trained toward their images, and exports its last epoch.
/// </summary>
public sealed class DialogueTrainingTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-dialogue-");
    public void Dispose() => _dir.Delete(true);

    private static string Ucm => Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
    private static string TestData(string f) => Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", f);

    private TrainConfig Config(string backbone) => new()
    {
        Mode = "frozen-vision", Datasets = [new DatasetRef("ucm-captions", Ucm)], Tokenizer = TestData("ucm-bpe-319.model"), Vision = backbone,
        LlmConfig = new LlamaConfig { HiddenSize = 32, IntermediateSize = 64, NumHiddenLayers = 1, NumAttentionHeads = 2, VocabSize = 320, RmsNormEps = 1e-5, MaxPositionEmbeddings = 128 },
        SharedDim = 16, BatchSize = 4, Epochs = 1, WarmupSteps = 2, MaxTrainImages = 16, MaxValImages = 4,
        Device = "cpu", Threads = 1, CheckpointEvery = 1000, Seed = 3, FeatureViews = 1, FeatureCache = Path.Combine(_dir.FullName, "cache"),
    };

    [Fact]
    public void ARunContinuesAModelFolderOnDialoguesAndExportsItsLastEpoch()
    {
        var backbone = TinyResNet.Save(Path.Combine(_dir.FullName, "tiny-resnet"), seed: 5, blocks: [1, 1, 1, 1]);
        var first = Path.Combine(_dir.FullName, "captions");
        new RsCapRetTrainer(Config(backbone), first, _ => { }).Run();

        var log = new List<string>();
        var dialogues = Config(backbone) with { InitFrom = Path.Combine(first, "best"), DialogueProbability = 1, Selection = "last", Epochs = 2, LearningRate = 1e-3, DialogueFollowUps = 2, DialogueAnswerLossWeight = 1, DialogueRetDistillWeight = 1, DialogueExtendedPhrasings = true };
        dialogues.Validate("dialogue.json");
        var history = new RsCapRetTrainer(dialogues, Path.Combine(_dir.FullName, "dialogues"), log.Add).Run();
        Assert.Contains(log, l => l.Contains($"decoder and heads initialised from {Path.Combine(first, "best")}"));
        Assert.Equal(2, history.Count);
        Assert.All(history, h => Assert.True(double.IsFinite(h.TrainLoss)));
        // Dialogue [RET]s add their InfoNCE and distillation, the answers their own cross-entropy: the total is above caption + contrastive.
        Assert.All(history, h => Assert.True(h.TrainLoss > h.CaptionLoss + h.ContrastiveLoss, $"{h.TrainLoss} vs {h.CaptionLoss} + {h.ContrastiveLoss}"));
        Assert.Equal(2, log.Count(l => l.Contains("selection 'last'")));
        using var model = RsCapRetModel.Load(Path.Combine(_dir.FullName, "dialogues", "best"));
        using var before = RsCapRetModel.Load(Path.Combine(first, "best"));
        Assert.False(model.Llm.LmHeadWeight.allclose(before.Llm.LmHeadWeight), "the continued run trained the decoder");
        // The folder says it was trained on dialogues (the chat names caption-only models); the first run's does not.
        Assert.True(RsCapRetConfig.Load(Path.Combine(_dir.FullName, "dialogues", "best")).Dialogue);
        Assert.False(RsCapRetConfig.Load(Path.Combine(first, "best")).Dialogue);
    }

    [Fact]
    public void ARunThatReadsUserTurnsTrainsTheReadingFromZeroAndItsFolderNamesTheEncoder()
    {
        var backbone = TinyResNet.Save(Path.Combine(_dir.FullName, "tiny-resnet"), seed: 5, blocks: [1, 1, 1, 1]);
        var first = Path.Combine(_dir.FullName, "captions");
        new RsCapRetTrainer(Config(backbone), first, _ => { }).Run();
        var words = DialogueGenerator.Phrasings.SelectMany(p => p.Template.Split(' ')).Concat(BackboneAdaptationTests.UcmWords());
        var encoder = TinyTextEncoder.Save(Path.Combine(_dir.FullName, "tiny-bert"), words);
        var encoderBytes = File.ReadAllBytes(Path.Combine(encoder, "model.safetensors"));

        var log = new List<string>();
        var cfg = Config(backbone) with { InitFrom = Path.Combine(first, "best"), DialogueProbability = 1, Selection = "last", LearningRate = 1e-3, DialogueFollowUps = 2, DialogueTurnEncoder = encoder };
        cfg.Validate("dialogue.json");
        var history = new RsCapRetTrainer(cfg, Path.Combine(_dir.FullName, "reading"), log.Add).Run();
        Assert.All(history, h => Assert.True(double.IsFinite(h.TrainLoss)));
        Assert.Contains(log, l => l.StartsWith($"turn encoder: tiny from {encoder} (frozen, 24-d"));
        // The caption-only folder has no reading: it starts at zero and the run trains it; the encoder stays as it was.
        Assert.Contains(log, l => l.Contains("decoder and heads initialised from"));
        Assert.Equal(encoderBytes, File.ReadAllBytes(Path.Combine(encoder, "model.safetensors")));
        var folder = Path.Combine(_dir.FullName, "reading", "best");
        Assert.Equal(encoder, RsCapRetConfig.Load(folder).TurnEncoder);
        using var model = RsCapRetModel.Load(folder);
        Assert.True(model.ReadsTurns);
        var reading = model.named_parameters().Single(p => p.name == "heads.turn_reading.weight").parameter;
        Assert.True(reading.abs().sum().item<float>() > 0, "the reading trained away from zero");
        Assert.Equal([32L, 24L], reading.shape);   // the decoder's width from the encoder's
        using var caption = RsCapRetModel.Load(Path.Combine(first, "best"));
        Assert.False(caption.ReadsTurns);

        // A reading in a prompt is the encoder's sentence vector through the trained map: one position of the decoder's width.
        using var prompt = model.EmbedPrompt([new TurnReadingSegment("find trees")]);
        using var direct = model.TurnReadings(model.TurnSentenceVectors(["find trees"]));
        Assert.Equal([1L, 1L, 32L], prompt.shape);
        Assert.True(prompt[0].allclose(direct, rtol: 1e-5, atol: 1e-6));
        Assert.False(prompt[0].allclose(model.TurnReadings(model.TurnSentenceVectors(["describe it"])), rtol: 1e-3, atol: 1e-4), "different words read differently");
        var e = Assert.Throws<InvalidOperationException>(() => caption.EmbedPrompt([new TurnReadingSegment("find trees")]));
        Assert.Contains("turn_encoder", e.Message);

        // Leaving some turns' words out (the reading alone says what was asked) changes what the run learns.
        var dropped = new RsCapRetTrainer(cfg with { DialogueTurnWordDropout = 0.5 }, Path.Combine(_dir.FullName, "dropped"), _ => { }).Run();
        Assert.NotEqual(history[0].TrainLoss, dropped[0].TrainLoss);

        // The reading at its own learning rate (the rest's unchanged) moves further from its zero start.
        var fastLog = new List<string>();
        new RsCapRetTrainer(cfg with { DialogueTurnReadingLearningRate = 1e-2, DialogueRetrievalAnswerNamesThing = true }, Path.Combine(_dir.FullName, "fast"), fastLog.Add).Run();
        Assert.Contains("turn reading learning rate 1.00E-002 (10× learning_rate)", fastLog);
        // The folder records how its retrieval answers were trained, for evaluate --dialogue's context turns.
        Assert.True(RsCapRetConfig.Load(Path.Combine(_dir.FullName, "fast", "best")).RetrievalAnswerNamesThing);
        Assert.False(RsCapRetConfig.Load(Path.Combine(_dir.FullName, "reading", "best")).RetrievalAnswerNamesThing);
        using var fast = RsCapRetModel.Load(Path.Combine(_dir.FullName, "fast", "best"));
        var fastReading = fast.named_parameters().Single(p => p.name == "heads.turn_reading.weight").parameter;
        Assert.True(fastReading.norm().item<float>() > 2 * reading.norm().item<float>(), $"{fastReading.norm().item<float>()} vs {reading.norm().item<float>()}");
    }

    [Fact]
    public void AChatAdapterRunLeavesTheSearchAsItWasAndItsFolderLoadsTheChatApart()
    {
        var backbone = TinyResNet.Save(Path.Combine(_dir.FullName, "tiny-resnet"), seed: 5, blocks: [1, 1, 1, 1]);
        var first = Path.Combine(_dir.FullName, "captions", "best");
        new RsCapRetTrainer(Config(backbone), Path.Combine(_dir.FullName, "captions"), _ => { }).Run();
        var words = DialogueGenerator.Phrasings.SelectMany(p => p.Template.Split(' ')).Concat(BackboneAdaptationTests.UcmWords());
        var encoder = TinyTextEncoder.Save(Path.Combine(_dir.FullName, "tiny-bert"), words);

        var log = new List<string>();
        var cfg = Config(backbone) with
        {
            InitFrom = first,
            DialogueProbability = 0.5,
            Selection = "last",
            LearningRate = 1e-2,
            DialogueFollowUps = 1,
            DialogueRetDistillWeight = 1,
            DialogueTurnEncoder = encoder,
            DialogueChatAdapterRank = 4,
            Version = "chat-test",
        };
        cfg.Validate("chat.json");
        var history = new RsCapRetTrainer(cfg, Path.Combine(_dir.FullName, "chat"), log.Add).Run();
        Assert.All(history, h => Assert.True(double.IsFinite(h.TrainLoss)));
        // One layer: q, k, v, o, gate, up, down; rank 4 over 32-d in and out (64-d for the MLP's middle).
        Assert.Contains(log, l => l.StartsWith("chat adapter: rank 4 on 7 projections (", StringComparison.Ordinal) && l.Contains("which stays the search"));

        // The folder is init_from's model, byte for byte where search and captions come from: same catalogue identity.
        var folder = Path.Combine(_dir.FullName, "chat", "best");
        Assert.Equal(RsCapRetModel.HeadsSha256(first), RsCapRetModel.HeadsSha256(folder));
        Assert.Equal(File.ReadAllBytes(Path.Combine(first, "llm", "model.safetensors")), File.ReadAllBytes(Path.Combine(folder, "llm", "model.safetensors")));
        var config = RsCapRetConfig.Load(folder);
        Assert.Equal("chat", config.Chat);
        Assert.Null(config.TurnEncoder);
        var adapter = ChatAdapterConfig.Load(Path.Combine(folder, "chat"));
        Assert.Equal((4, 4.0, "chat-test", encoder), (adapter.Rank, adapter.Alpha, adapter.Version, adapter.TurnEncoder));
        Assert.Equal(RsCapRetModel.HeadsSha256(first), adapter.BaseHeadsSha256);

        using var search = RsCapRetModel.Load(folder);
        using var chat = RsCapRetModel.LoadChat(folder);
        Assert.False(search.ReadsTurns);
        Assert.True(chat.ReadsTurns);
        using var before = RsCapRetModel.Load(first);
        var ids = torch.tensor(new long[] { before.BosTokenId, 5, 6, 7, before.RetTokenId }).unsqueeze(0);
        Assert.True(search.RetEmbedding(ids).allclose(before.RetEmbedding(ids)), "search's [RET] is init_from's");
        Assert.False(chat.RetEmbedding(ids).allclose(search.RetEmbedding(ids), rtol: 1e-3, atol: 1e-4), "the chat's [RET] trained");
        using var pooled = torch.randn(2, search.Vision.HiddenSize);
        Assert.True(chat.ImageEmbeddingFromPooled(pooled).allclose(search.ImageEmbeddingFromPooled(pooled)), "image vectors are the search's");
        Assert.True(chat.VisualPrefix(pooled).allclose(search.VisualPrefix(pooled)), "the visual prefix is the search's");

        // The chat's decoder is the search's plus (alpha / rank)·B·A from the adapter file (stored in float16).
        using (var weights = RsCapRet.Model.Checkpoints.Checkpoint.Open(Path.Combine(folder, "chat", adapter.Weights)))
        {
            const string layer = "model.layers.0.mlp.down_proj";
            var delta = torch.matmul(weights.Read(layer + ".lora_b", torch.ScalarType.Float32), weights.Read(layer + ".lora_a", torch.ScalarType.Float32));
            Assert.True(delta.abs().max().item<float>() > 0, "the adapter trained away from its zero start");
            static torch.Tensor W(RsCapRetModel m) => m.named_parameters().Single(p => p.name == "llm." + layer + ".weight").parameter;
            Assert.True(W(chat).allclose(W(search) + delta, rtol: 1e-5, atol: 1e-6));
        }

        // evaluate --dialogue: the chat answers, direct queries are the search's; caption requests are listed by phrasing.
        var tokenizer = RsCapRet.Model.Tokenizers.LlamaTextTokenizer.Load(Path.Combine(folder, "tokenizer.model"), search.RetTokenId);
        var report = DialogueEvaluation.Run(chat, tokenizer, search.Preprocessor(), "adapted", Ucm, "val", maxImages: 3, searchModel: search);
        var chatAsSearch = DialogueEvaluation.Run(chat, tokenizer, search.Preprocessor(), "adapted", Ucm, "val", maxImages: 3);
        Assert.Equal(["seen in training", "held out", "held out, written with v22"], report.Figures.Select(f => f.Phrasings));
        Assert.All(report.Figures, f =>
        {
            // One caption request per image and phrasing set; where none retrieved, the mR counts them as the last rank.
            Assert.Equal(3, f.CaptionRequests!.Sum(c => c.Asked));
            Assert.All(f.CaptionRequests!, c => Assert.InRange(c.Retrieved, 0, c.Asked));
        });
        // The chat's answers do not depend on which model the direct queries come from.
        Assert.Equal(chatAsSearch.Figures.Select(f => f.DialogueTextToImage), report.Figures.Select(f => f.DialogueTextToImage));
        Assert.Equal(chatAsSearch.Figures.Select(f => f.CaptionRequests!.Sum(c => c.Retrieved)), report.Figures.Select(f => f.CaptionRequests!.Sum(c => c.Retrieved)));
        Assert.Contains("| held out | " + report.Figures[1].CaptionRequests![0].Phrasing + " | ", report.Markdown());

        // An adapter only loads on the model it was trained on.
        File.WriteAllText(Path.Combine(folder, "chat", ChatAdapterConfig.FileName),
            System.Text.Json.JsonSerializer.Serialize(adapter with { BaseHeadsSha256 = new string('0', 64) }));
        var e = Assert.Throws<RsCapRet.Model.Checkpoints.CheckpointException>(() => RsCapRetModel.LoadChat(folder));
        Assert.Contains("an adapter only fits the decoder it adapts", e.Message);
    }

    [Fact]
    public void InitFromMustBeAModelFolderOfTheFrozenVisionMode()
    {
        var cfg = Config("backbone:none") with { InitFrom = _dir.FullName };
        var e = Assert.Throws<FormatException>(() => cfg.Validate("d.json"));
        Assert.Contains("init_from", e.Message);
        Assert.Contains("not a model folder", e.Message);
        Assert.Contains("dialogue_probability", Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 2 }).Validate("d.json")).Message);
        Assert.Contains("selection", Assert.Throws<FormatException>(() => (Config("x") with { Selection = "best" }).Validate("d.json")).Message);
        Assert.Contains("dialogue_ret_distill_weight", Assert.Throws<FormatException>(() => (Config("x") with { DialogueRetDistillWeight = -1 }).Validate("d.json")).Message);
        Assert.Contains("dialogue_turn_encoder reads user turns: it needs dialogue_probability above 0",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueTurnEncoder = "backbone:all-minilm-l6-v2" }).Validate("d.json")).Message);
        Assert.Contains("dialogue_turn_word_dropout leaves the reading alone: it needs dialogue_turn_encoder",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 1, DialogueTurnWordDropout = 0.3 }).Validate("d.json")).Message);
        Assert.Contains("dialogue_turn_reading_learning_rate is the turn reading's: it needs dialogue_turn_encoder",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 1, DialogueTurnReadingLearningRate = 1e-3 }).Validate("d.json")).Message);
        Assert.Contains("dialogue_retrieval_answer_names_thing shapes dialogue answers: it needs dialogue_probability above 0",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueRetrievalAnswerNamesThing = true }).Validate("d.json")).Message);
        Assert.Contains("dialogue_chat_adapter_rank adapts a trained model's decoder: it needs init_from",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 1, DialogueChatAdapterRank = 8 }).Validate("d.json")).Message);
        Assert.Contains("dialogue_chat_adapter_rank must be 1..256",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 1, DialogueChatAdapterRank = 0 }).Validate("d.json")).Message);
        Assert.Contains("dialogue_turn_word_dropout must be",
            Assert.Throws<FormatException>(() => (Config("x") with { DialogueProbability = 1, DialogueTurnEncoder = "e", DialogueTurnWordDropout = 1 }).Validate("d.json")).Message);
    }
}
