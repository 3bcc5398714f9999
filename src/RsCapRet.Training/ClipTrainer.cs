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
    IReadOnlyDictionary<string, RecallAtK>? ValTextToImageByDataset = null);

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

    private sealed record CheckpointState(int Epoch, int Step, List<ClipEpochResult> History);

    /// <summary>
    /// The epoch loop of both contrastive trainers: resume from the checkpoint, the untrained baseline as epoch 0,
    /// deterministic batches (a permutation per epoch), warm-up + cosine, checkpoints every checkpoint_every steps and
    /// after each epoch, max_steps, validation after each epoch, export of the best epoch by val text->image mR (its number to <paramref name="exportBest"/>), early
    /// stopping, and the report. <paramref name="trainStep"/> takes (batch indices, step, learning rate) and returns the loss.
    /// </summary>
    internal static List<ClipEpochResult> RunEpochs(ClipTrainConfig cfg, string outDir, Action<string> log, Action<int, int>? progress,
        nn.Module model, OptimizerHelper optimizer, int trainCount, Func<Tensor> logitScale, Func<int[], int, double, double> trainStep,
        Func<(RecallAtK TextToImage, RecallAtK ImageToText, Dictionary<string, RecallAtK>? ByDataset)> validate,
        Action<int> exportBest, string exportedTo, CancellationToken ct)
    {
        var stepsPerEpoch = trainCount / cfg.BatchSize;
        if (stepsPerEpoch == 0) throw new InvalidOperationException($"{trainCount} training images do not fill one batch of {cfg.BatchSize}");
        var totalSteps = stepsPerEpoch * cfg.Epochs;
        var checkpointDir = Path.Combine(outDir, "checkpoint");
        var resumed = TrainingRun.TryResume<CheckpointState>(checkpointDir, model, optimizer);
        var (startEpoch, step, history) = resumed is null ? (0, 0, new List<ClipEpochResult>()) : (resumed.Epoch, resumed.Step, resumed.History);
        if (resumed is not null) log($"resumed from {checkpointDir}: epoch {startEpoch}, step {step}");
        double Scale() => logitScale().exp().item<float>();
        if (history.Count == 0)
        {
            var (t2i0, i2t0, by0) = validate();
            history.Add(new ClipEpochResult(0, 0, double.NaN, Scale(), t2i0, i2t0, 0, by0));
            log($"before training: val text->image {t2i0}, image->text {i2t0}");
        }
        var trained = history.Where(h => h.Epoch > 0).ToList();
        var best = trained.Count == 0 ? double.NegativeInfinity : trained.Max(h => h.ValTextToImage.Mean);
        var sinceBest = trained.Count == 0 ? 0 : trained.Count - 1 - trained.FindLastIndex(h => h.ValTextToImage.Mean == best);

        for (var epoch = startEpoch; epoch < cfg.Epochs && sinceBest < cfg.EarlyStoppingPatience; epoch++)
        {
            var sw = Stopwatch.StartNew();
            var order = TrainingRun.Permutation(trainCount, cfg.Seed * 1000 + epoch);
            double sumLoss = 0; var n = 0;
            for (var b = step - epoch * stepsPerEpoch; b < stepsPerEpoch; b++, step++)
            {
                ct.ThrowIfCancellationRequested();
                if (step == cfg.MaxSteps)
                {
                    TrainingRun.SaveCheckpoint(checkpointDir, model, optimizer, new CheckpointState(epoch, step, history));
                    log($"stopped at max_steps {step}; checkpoint in {checkpointDir}");
                    return history;
                }
                var lr = TrainingRun.LearningRate(step, cfg.LearningRate, cfg.WarmupSteps, "cosine", cfg.MinLrRatio, totalSteps);
                var loss = trainStep(order.Skip(b * cfg.BatchSize).Take(cfg.BatchSize).ToArray(), step, lr);
                sumLoss += loss; n++;
                progress?.Invoke(step + 1, totalSteps);
                if (step % 10 == 0) log(FormattableString.Invariant($"epoch {epoch + 1} step {step + 1}: loss {loss:F4} lr {lr:E2} scale {Scale():F1} ({n * cfg.BatchSize / sw.Elapsed.TotalSeconds:F1} images/s)"));
                if ((step + 1) % cfg.CheckpointEvery == 0) TrainingRun.SaveCheckpoint(checkpointDir, model, optimizer, new CheckpointState(epoch, step + 1, history));
            }
            var (t2i, i2t, byDataset) = validate();
            var result = new ClipEpochResult(epoch + 1, step, sumLoss / Math.Max(1, n), Scale(), t2i, i2t, sw.Elapsed.TotalSeconds, byDataset);
            history.Add(result);
            log(FormattableString.Invariant($"epoch {epoch + 1}: train loss {result.TrainLoss:F4}, val text->image {t2i}, image->text {i2t} ({result.Seconds:F0} s)"));
            foreach (var (name, r) in byDataset ?? []) log($"  val text->image {name}: {r}");
            if (t2i.Mean > best)
            {
                best = t2i.Mean; sinceBest = 0;
                exportBest(epoch + 1);
                log($"  new best (text->image mR {best:F2}): {exportedTo}");
            }
            else sinceBest++;
            TrainingRun.SaveCheckpoint(checkpointDir, model, optimizer, new CheckpointState(epoch + 1, step, history));
            WriteReport(outDir, history);
        }
        if (sinceBest >= cfg.EarlyStoppingPatience) log($"early stop: no improvement of val text->image mR for {sinceBest} epochs");
        return history;
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
            TrainingRun.InitSmall(model);
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
        var loss = RsCapRetModel.InfoNce(logits);
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
