using System.Diagnostics;
using System.Globalization;
using System.Text;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Training.Datasets;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace RsCapRet.Training;

/// <summary>Validation retrieval after an epoch (epoch 0: the model before any training step).
/// With several validation datasets (backbone adaptation runs) the recalls are the mean over datasets, each ranked among its own images.</summary>
public sealed record ClipEpochResult(int Epoch, int Step, double TrainLoss, double LogitScale, RecallAtK ValTextToImage, RecallAtK ValImageToText, double Seconds,
    IReadOnlyDictionary<string, RecallAtK>? ValTextToImageByDataset = null) : IEpochFigures;

/// <summary>
/// Contrastive fine-tuning of a CLIP dual encoder on captioned imagery (the paper's CLIP-RSICD / CLIP-Cap-4 step):
/// symmetric InfoNCE with the learnable temperature, AdamW (no decay on gains, biases, embeddings' positions and the
/// scale), warm-up + cosine, flips / 90° rotations / random resized crops, one reference caption sampled per image
/// and step. Deterministic batches and checkpoints as in <see cref="RsCapRetTrainer"/>, so a resumed run matches an
/// uninterrupted one. The best epoch by val text->image mR is exported to best/ (CLIPModel layout + tokenizer) and
/// best/vision/ (CLIPVisionModelWithProjection layout: the frozen encoder RS-CapRet's heads mode loads).
/// </summary>
public sealed class ClipTrainer
{
    private readonly ClipTrainConfig _cfg;
    private readonly string _outDir;
    private readonly Action<string> _log;

    /// <summary>Called after every optimiser step with (steps done, steps planned): job progress.</summary>
    public Action<int, int>? StepProgress { get; init; }

    public ClipTrainer(ClipTrainConfig cfg, string outDir, Action<string> log)
    {
        _cfg = cfg; _outDir = Path.GetFullPath(outDir); _log = log;
    }

    private sealed record Split(Tensor Pixels, long[][][] Captions, IReadOnlyList<CaptionedImage> Images);

    public IReadOnlyList<ClipEpochResult> Run(CancellationToken ct = default)
    {
        if (_cfg.VisionBackbone is not null)
            return new BackboneClipTrainer(_cfg, _outDir, _log) { StepProgress = StepProgress }.Run(ct);
        if (_cfg.Threads is { } th) set_num_threads(th);
        Directory.CreateDirectory(_outDir);
        File.WriteAllText(Path.Combine(_outDir, "train-clip-config.json"), _cfg.ToJson());
        var device = TorchDevice.Resolve(_cfg.Device);
        manual_seed(_cfg.Seed);
        var tokenizer = LoadTokenizer(_cfg.TokenizerDirectory);
        using var model = BuildModel(tokenizer, device);
        var pre = new ImagePreprocessor(model.Config.Vision.ImageSize);
        var train = LoadSplit(_cfg.TrainSplit, _cfg.Datasets, tokenizer, pre, _cfg.MaxTrainImages);
        var val = LoadSplit(_cfg.ValSplit, TrainingRun.ValidationDatasets(_cfg.Datasets, _cfg.ValDatasets), tokenizer, pre, _cfg.MaxValImages);
        _log($"train: {train.Images.Count} images; val: {val.Images.Count} images; device {device}; {model.parameters().Sum(p => p.numel()):N0} parameters");

        var optimizer = BuildOptimizer(model);
        return RunEpochs(_cfg, _outDir, _log, StepProgress, model, optimizer, train.Images.Count, () => model.LogitScale,
            (idx, step, lr) => TrainStep(model, optimizer, train, idx, step, lr, device),
            () => { var (t2i, i2t) = Validate(model, val, device); return (t2i, i2t, null); },
            _ => Export(model, Path.Combine(_outDir, "best")), "exported to " + Path.Combine(_outDir, "best"), ct);
    }

    /// <summary>
    /// The <see cref="EpochLoop{TResult}"/> of both contrastive trainers: the untrained baseline as epoch 0, warm-up +
    /// cosine, export of the best epoch by val text->image mR (its number to <paramref name="exportBest"/>).
    /// <paramref name="trainStep"/> takes (batch indices, step, learning rate) and returns the loss.
    /// </summary>
    internal static List<ClipEpochResult> RunEpochs(ClipTrainConfig cfg, string outDir, Action<string> log, Action<int, int>? progress,
        nn.Module model, OptimizerHelper optimizer, int trainCount, Func<Tensor> logitScale, Func<int[], int, double, double> trainStep,
        Func<(RecallAtK TextToImage, RecallAtK ImageToText, Dictionary<string, RecallAtK>? ByDataset)> validate,
        Action<int> exportBest, string exportedTo, CancellationToken ct)
    {
        double Scale() => logitScale().exp().item<float>();
        return new EpochLoop<ClipEpochResult>
        {
            Settings = new EpochLoopSettings(trainCount, cfg.BatchSize, cfg.Epochs, cfg.Seed, cfg.MaxSteps, cfg.CheckpointEvery, cfg.EarlyStoppingPatience,
                cfg.LearningRate, cfg.WarmupSteps, "cosine", cfg.MinLrRatio),
            OutDir = outDir, Log = log, StepProgress = progress, Model = model, Optimizer = optimizer,
            TrainStep = (idx, step, lr) => [trainStep(idx, step, lr)],
            StepLine = s => FormattableString.Invariant(
                $"epoch {s.Epoch} step {s.StepsDone}: loss {s.Losses[0]:F4} lr {s.LearningRate:E2} scale {Scale():F1} ({s.StepsThisEpoch * cfg.BatchSize / s.EpochElapsed.TotalSeconds:F1} images/s)"),
            ValidateEpoch = totals =>
            {
                var (t2i, i2t, byDataset) = validate();
                return new ClipEpochResult(totals.Epoch, totals.Step, totals.MeanLoss(0), Scale(), t2i, i2t, totals.Seconds, byDataset);
            },
            EpochLine = r => FormattableString.Invariant($"epoch {r.Epoch}: train loss {r.TrainLoss:F4}, val text->image {r.ValTextToImage}, image->text {r.ValImageToText} ({r.Seconds:F0} s)"),
            ValidateBeforeTraining = true,
            Export = exportBest, ExportedTo = exportedTo,
            WriteReport = history => WriteReport(outDir, history),
        }.Run(ct);
    }

    public static ClipBpeTokenizer LoadTokenizer(string directory) =>
        ClipBpeTokenizer.Load(Path.Combine(directory, "vocab.json"), Path.Combine(directory, "merges.txt"));

    private ClipModel BuildModel(ClipBpeTokenizer tokenizer, Device device)
    {
        ClipModel model;
        if (_cfg.Clip is { } dir) model = ClipModel.FromPretrained(dir);
        else
        {
            var c = _cfg.ClipConfig!;
            // Pooling reads the end-of-text position, so the text tower must know the tokenizer's id for it.
            model = new ClipModel(c with { Text = c.Text with { VocabSize = tokenizer.VocabSize, EosTokenId = tokenizer.EndId } });
            ModuleInit.GptStyle(model);
        }
        if (tokenizer.VocabSize > model.Config.Text.VocabSize)
            throw new InvalidOperationException($"{_cfg.TokenizerDirectory}: {tokenizer.VocabSize} tokens, but the text tower has {model.Config.Text.VocabSize}");
        model.to(device);
        model.train();
        return model;
    }

    /// <summary>AdamW with weight decay on matrices only (not on gains, biases, the class embedding or the logit scale).</summary>
    private AdamW BuildOptimizer(ClipModel model)
    {
        var named = model.named_parameters().ToList();
        bool Decays(string name, Tensor p) => p.dim() >= 2 && !name.Contains("position_embedding");
        var decay = named.Where(p => Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
        var rest = named.Where(p => !Decays(p.name, p.parameter)).Select(p => p.parameter).ToList();
        return optim.AdamW(
        [
            new AdamW.ParamGroup(decay, new AdamW.Options { LearningRate = _cfg.LearningRate, weight_decay = _cfg.WeightDecay }),
            new AdamW.ParamGroup(rest, new AdamW.Options { LearningRate = _cfg.LearningRate, weight_decay = 0 }),
        ], _cfg.LearningRate, beta2: 0.98, eps: 1e-6);
    }

    private Split LoadSplit(string split, IEnumerable<DatasetRef> datasets, ClipBpeTokenizer tokenizer, ImagePreprocessor pre, int? limit)
    {
        var images = TrainingRun.LoadSplit(datasets, split, limit);
        var pixels = TrainingRun.DecodeImages(images, pre);
        var captions = images.Select(im => im.Captions.Select(c => tokenizer.EncodeForModel(c, _cfg.ContextLength)).ToArray()).ToArray();
        return new Split(pixels, captions, images);
    }

    private double TrainStep(ClipModel model, AdamW optimizer, Split data, int[] idx, int step, double lr, Device device)
    {
        using var scope = NewDisposeScope();
        var rng = new Random(TrainingRun.StepSeed(_cfg.Seed, step));
        foreach (var g in optimizer.ParamGroups) g.LearningRate = lr;
        optimizer.zero_grad();
        var pixels = data.Pixels.index_select(0, tensor(idx.Select(i => (long)i).ToArray())).to(device);
        if (_cfg.Augment) pixels = TrainingRun.AugmentOverhead(pixels, rng, _cfg.MinCropScale);
        var texts = ClipEvaluator.TextBatch(idx.Select(i => data.Captions[i][rng.Next(data.Captions[i].Length)]).ToList(), device);
        var logits = ClipModel.LogitsPerImage(model.ImageEmbeds(pixels), model.TextEmbeds(texts), model.LogitScale);
        var loss = Losses.InfoNce(logits);
        loss.backward();
        optimizer.step();
        using (no_grad()) model.LogitScale.clamp_(Scalars.Of(0.0), Scalars.Of(Math.Log(100)));
        return loss.item<float>();
    }

    private static (RecallAtK TextToImage, RecallAtK ImageToText) Validate(ClipModel model, Split val, Device device)
    {
        model.eval();
        try
        {
            var texts = val.Captions.SelectMany((caps, image) => caps.Select(c => (Image: image, Ids: c))).ToList();
            var sim = ClipEvaluator.Similarity(model, val.Pixels, texts.Select(t => t.Ids).ToList(), device);
            var labels = texts.Select(t => t.Image).ToList();
            return (RetrievalMetrics.TextToImage(sim, labels), RetrievalMetrics.ImageToText(sim, labels));
        }
        finally { model.train(); }
    }

    private void Export(ClipModel model, string dir)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        model.SavePretrained(dir);
        model.SaveVisionTower(Path.Combine(dir, "vision"));
        foreach (var f in new[] { "vocab.json", "merges.txt" }) File.Copy(Path.Combine(_cfg.TokenizerDirectory, f), Path.Combine(dir, f), true);
    }

    /// <summary>history.csv and training.svg of a contrastive run (the per-dataset column is filled when there are several).</summary>
    internal static void WriteReport(string outDir, List<ClipEpochResult> history)
    {
        var csv = new StringBuilder("epoch,step,train_loss,logit_scale,t2i_r1,t2i_r5,t2i_r10,t2i_mr,i2t_r1,i2t_r5,i2t_r10,i2t_mr,seconds,t2i_mr_by_dataset\n");
        foreach (var h in history)
        {
            var byDataset = h.ValTextToImageByDataset is null ? "" : string.Join(";", h.ValTextToImageByDataset.Select(kv => FormattableString.Invariant($"{kv.Key}={kv.Value.Mean:F2}")));
            csv.AppendLine(string.Create(CultureInfo.InvariantCulture, $"{h.Epoch},{h.Step},{h.TrainLoss:F5},{h.LogitScale:F2},{h.ValTextToImage.R1:F2},{h.ValTextToImage.R5:F2},{h.ValTextToImage.R10:F2},{h.ValTextToImage.Mean:F2},{h.ValImageToText.R1:F2},{h.ValImageToText.R5:F2},{h.ValImageToText.R10:F2},{h.ValImageToText.Mean:F2},{h.Seconds:F1},{byDataset}"));
        }
        File.WriteAllText(Path.Combine(outDir, "history.csv"), csv.ToString());
        var epochs = history.Select(h => (double)h.Epoch).ToArray();
        File.WriteAllText(Path.Combine(outDir, "training.svg"), SvgPlot.Lines("CLIP contrastive fine-tuning", "epoch",
        [
            ("train loss", epochs[1..], history.Skip(1).Select(h => h.TrainLoss).ToArray(), false),
            ("val text→image mR (%)", epochs, history.Select(h => h.ValTextToImage.Mean).ToArray(), true),
            ("val image→text mR (%)", epochs, history.Select(h => h.ValImageToText.Mean).ToArray(), true),
        ]));
    }
}

/// <summary>Retrieval evaluation of a CLIP dual encoder: cosine similarity of every caption to every image.</summary>
public static class ClipEvaluator
{
    /// <summary>[texts, images] cosine similarities; images as preprocessed pixels, texts as CLIP token rows.</summary>
    public static float[,] Similarity(ClipModel model, Tensor pixels, IReadOnlyList<long[]> texts, Device device)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var imgs = new List<Tensor>();
        for (long s = 0; s < pixels.shape[0]; s += 64)
            imgs.Add(nn.functional.normalize(model.ImageEmbeds(pixels.narrow(0, s, Math.Min(64, pixels.shape[0] - s)).to(device)), dim: -1));
        var txts = new List<Tensor>();
        for (var s = 0; s < texts.Count; s += 128)
            txts.Add(nn.functional.normalize(model.TextEmbeds(TextBatch(texts.Skip(s).Take(128).ToList(), device)), dim: -1));
        return TrainingRun.ToMatrix(matmul(cat(txts, 0), cat(imgs, 0).t()));
    }

    /// <summary>
    /// Zero-padded CLIP token rows (start ... end, 0...) cut to the longest text among them: the causal tower pools at
    /// the end token and never looks past it, so the padding beyond the batch's longest text is dead work.
    /// </summary>
    internal static Tensor TextBatch(IReadOnlyList<long[]> rows, Device device)
    {
        var len = rows.Max(r => Array.FindLastIndex(r, v => v != 0) + 1);
        var flat = new long[rows.Count * len];
        for (var i = 0; i < rows.Count; i++) Array.Copy(rows[i], 0, flat, i * len, len);
        return tensor(flat, [rows.Count, len], device: device);
    }

    /// <summary>A Hugging Face CLIPModel folder: config.json with a text tower, and CLIP's tokenizer files.</summary>
    public static bool IsClipFolder(string directory)
    {
        var config = Path.Combine(directory, "config.json");
        if (File.Exists(Path.Combine(directory, "rscapret.json")) || !File.Exists(config)) return false;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(config));
            return doc.RootElement.TryGetProperty("text_config", out _) && doc.RootElement.TryGetProperty("vision_config", out _);
        }
        catch (System.Text.Json.JsonException) { return false; }
    }

    /// <summary>Text->image and image->text Recall@1/5/10 of a CLIP folder on a Karpathy split.</summary>
    public static ClipRetrievalReport Evaluate(string clipDirectory, string datasetDirectory, string split, Device device)
    {
        var sw = Stopwatch.StartNew();
        var tokenizer = ClipTrainer.LoadTokenizer(clipDirectory);
        using var model = ClipModel.FromPretrained(clipDirectory, device);
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(datasetDirectory));
        var images = KarpathyDataset.Load(datasetDirectory, name, new HashSet<string> { split });
        if (images.Count == 0) throw new ArgumentException($"{datasetDirectory}: no images in split '{split}'");
        using var pixels = TrainingRun.DecodeImages(images, new ImagePreprocessor(model.Config.Vision.ImageSize));
        var texts = images.SelectMany((im, i) => im.Captions.Select(c => (Image: i, Ids: tokenizer.EncodeForModel(c, model.Config.Text.MaxPositionEmbeddings)))).ToList();
        var sim = Similarity(model, pixels, texts.Select(t => t.Ids).ToList(), device);
        var labels = texts.Select(t => t.Image).ToList();
        return new ClipRetrievalReport(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(clipDirectory))), name, split, images.Count, texts.Count,
            RetrievalMetrics.TextToImage(sim, labels), RetrievalMetrics.ImageToText(sim, labels), sw.Elapsed.TotalSeconds);
    }
}
