using System.Globalization;
using System.Text;
using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Training;

/// <summary>
/// One epoch's figures. With several validation datasets, <see cref="ValTextToImage"/> and <see cref="ValImageToText"/>
/// average the per-dataset recalls (each dataset ranks among its own images), listed in <see cref="ValTextToImageByDataset"/>.
/// </summary>
public sealed record EpochResult(int Epoch, int Step, double TrainLoss, double CaptionLoss, double ContrastiveLoss,
    double ValCaptionLoss, RecallAtK ValTextToImage, RecallAtK ValImageToText, double Seconds,
    IReadOnlyDictionary<string, RecallAtK>? ValTextToImageByDataset = null) : IEpochFigures;

/// <summary>
/// Trains RS-CapRet: captioning cross-entropy on [visual prefix][caption [RET] EOS] (half of the sequences hold two
/// image+caption pairs, so the model sees interleaved input) plus InfoNCE between [RET] vectors of text-only passes
/// and image vectors. Batches are a pure function of (seed, epoch, step), so a run resumed from its last
/// checkpoint (weights + Adam state) continues exactly as it would have. The best epoch by validation
/// text->image mR is exported as a model folder.
/// </summary>
public sealed class RsCapRetTrainer
{
    private readonly TrainConfig _cfg;
    private readonly string _outDir;
    private readonly Action<string> _log;

    /// <summary>Called after every optimiser step with (steps done, steps planned): job progress.</summary>
    public Action<int, int>? StepProgress { get; init; }

    public RsCapRetTrainer(TrainConfig cfg, string outDir, Action<string> log)
    {
        _cfg = cfg; _outDir = Path.GetFullPath(outDir); _log = log;
    }

    /// <summary>
    /// One split in memory: decoded pixels, or (frozen-vision) the backbone's cached pooled vectors [views, N, D];
    /// <see cref="CaptionGroups"/> only for the training split with caption_groups_positive.
    /// </summary>
    private sealed record Split(Tensor? Pixels, List<int[]>[] Captions, IReadOnlyList<CaptionedImage> Images, int[]? CaptionGroups = null, Tensor? Features = null);

    private bool FrozenVision => _cfg.Mode == "frozen-vision";

    private string VisionDirectory => VisionBackbones.Resolve(_cfg.Vision!, Directory.GetCurrentDirectory());

    public IReadOnlyList<EpochResult> Run(CancellationToken ct = default)
    {
        if (_cfg.Threads is { } th) torch.set_num_threads(th);
        Directory.CreateDirectory(_outDir);
        File.WriteAllText(Path.Combine(_outDir, "train-config.json"), _cfg.ToJson());
        var device = TorchDevice.Resolve(_cfg.Device);
        manual_seed(_cfg.Seed);
        var tokenizer = LlamaTextTokenizer.Load(_cfg.Tokenizer);
        _tokenizer = tokenizer;
        using var model = BuildModel(tokenizer, device);
        var pre = model.Preprocessor();
        var train = LoadSplit(_cfg.TrainSplit, _cfg.Datasets, tokenizer, pre, _cfg.MaxTrainImages, model, _cfg.FeatureViews);
        if (_cfg.CaptionGroupsArePositives) train = train with { CaptionGroups = CaptionGroups(train.Images.Select(i => i.Captions).ToList()) };
        var val = LoadSplit(_cfg.ValSplit, TrainingRun.ValidationDatasets(_cfg.Datasets, _cfg.ValDatasets), tokenizer, pre, _cfg.MaxValImages, model, 1);
        _log($"train: {train.Images.Count} images; val: {val.Images.Count} images; device {device}; mode {_cfg.Mode}");
        if (train.CaptionGroups is { } groups) _log($"caption groups (positives of each other): {groups.Distinct().Count()} over {train.Images.Count} images");
        var trainClasses = _cfg.ClassBatchGroup > 1 ? train.Images.Select(i => SceneClassNames.ClassOf(i.Dataset, i.ImagePath)).ToArray() : null;
        if (trainClasses is not null)
            _log($"class-aware batches: runs of {_cfg.ClassBatchGroup} images of one class; {trainClasses.OfType<string>().Distinct().Count()} classes, {trainClasses.Count(c => c is null)} images without one");

        var trainable = model.named_parameters().Where(p => p.parameter.requires_grad).ToList();
        _log($"parameters: {model.parameters().Sum(p => p.numel()):N0} total, {trainable.Sum(p => p.parameter.numel()):N0} trainable");
        // The turn reading may learn at its own rate (the schedule scales each group's from its start).
        static bool Reading(string name) => name.StartsWith("heads.turn_reading.", StringComparison.Ordinal);
        List<Adam.ParamGroup> paramGroups = [new(trainable.Where(p => !Reading(p.name)).Select(p => p.parameter), new Adam.Options { LearningRate = _cfg.LearningRate })];
        if (trainable.Any(p => Reading(p.name)))
            paramGroups.Add(new(trainable.Where(p => Reading(p.name)).Select(p => p.parameter), new Adam.Options { LearningRate = _cfg.LearningRate * ReadingLrScale }));
        var optimizer = optim.Adam(paramGroups, _cfg.LearningRate);
        if (_cfg.DialogueTurnReadingLearningRate is { } readingLr) _log(FormattableString.Invariant($"turn reading learning rate {readingLr:E2} ({ReadingLrScale:0.##}× learning_rate)"));

        var bestDir = Path.Combine(_outDir, "best");
        using var searchModel = _searchModel;
        return new EpochLoop<EpochResult>
        {
            Settings = new EpochLoopSettings(train.Images.Count, _cfg.BatchSize, _cfg.Epochs, _cfg.Seed, _cfg.MaxSteps, _cfg.CheckpointEvery, _cfg.EarlyStoppingPatience,
                _cfg.LearningRate, _cfg.WarmupSteps, _cfg.LrSchedule, _cfg.MinLrRatio),
            OutDir = _outDir, Log = _log, StepProgress = StepProgress, Model = model, Optimizer = optimizer,
            EpochOrder = _cfg.ClassBatchGroup > 1 ? seed => TrainingRun.ClassGroupedPermutation(trainClasses!, _cfg.ClassBatchGroup, seed) : null,
            TrainStep = (idx, step, lr) =>
            {
                var (loss, cap, con) = TrainStep(model, optimizer, train, idx, step, lr, device);
                return [loss, cap, con];
            },
            StepLine = s => FormattableString.Invariant(
                $"epoch {s.Epoch} step {s.StepsDone}: loss {s.Losses[0]:F4} (caption {s.Losses[1]:F4}, contrastive {s.Losses[2]:F4}) lr {s.LearningRate:E2}"),
            ValidateEpoch = totals =>
            {
                var (valCap, t2i, i2t, byDataset) = Validate(model, val, device);
                return new EpochResult(totals.Epoch, totals.Step, totals.MeanLoss(0), totals.MeanLoss(1), totals.MeanLoss(2), valCap, t2i, i2t, totals.Seconds,
                    byDataset.Count > 1 ? byDataset : null);
            },
            EpochLine = r => FormattableString.Invariant(
                $"epoch {r.Epoch}: train loss {r.TrainLoss:F4}, val caption loss {r.ValCaptionLoss:F4}, val text->image {r.ValTextToImage}, image->text {r.ValImageToText} ({r.Seconds:F0} s)"),
            ExportEveryEpoch = _cfg.Selection == "last",
            Export = _ => Export(model, tokenizer, bestDir), ExportedTo = "exported to " + bestDir,
            WriteReport = WriteReport,
        }.Run(ct);
    }

    private LlamaTextTokenizer? _tokenizer;
    /// <summary>The turn reading's learning rate over the rest's (its Adam group is the second, when the model reads turns).</summary>
    private double ReadingLrScale => (_cfg.DialogueTurnReadingLearningRate ?? _cfg.LearningRate) / _cfg.LearningRate;

    private RsCapRetModel BuildModel(LlamaTextTokenizer tokenizer, Device device)
    {
        RsCapRetModel model;
        if (FrozenVision)
        {
            var llmCfg = _cfg.LlmConfig! with { VocabSize = tokenizer.BaseVocabSize + 1, BosTokenId = tokenizer.BosId, EosTokenId = tokenizer.EosId };
            var llm = new LlamaForCausalLM(llmCfg);
            ModuleInit.GptStyle(llm);
            var vision = VisionBackbones.FromPretrained(VisionDirectory);
            foreach (var p in vision.parameters()) p.requires_grad = false;
            _log($"vision backbone: {vision.Architecture} from {VisionDirectory} (frozen, {vision.HiddenSize}-d pooled vectors)");
            BertSentenceEncoder? turnEncoder = null;
            if (_cfg.DialogueTurnEncoder is { } te)
            {
                var dir = VisionBackbones.Resolve(te, Directory.GetCurrentDirectory());
                turnEncoder = BertSentenceEncoder.FromPretrained(dir);
                _log($"turn encoder: {turnEncoder.Config.Architecture} from {dir} (frozen, {turnEncoder.HiddenSize}-d sentence vectors read before each user turn)");
            }
            var heads = new RsCapRetHeads(vision.HiddenSize, llmCfg.HiddenSize, _cfg.VisualPrefixTokens, _cfg.SharedDim, turnEncoder?.HiddenSize ?? 0);
            model = new RsCapRetModel(llm, vision, heads, tokenizer.BaseVocabSize, turnEncoder);
            if (_cfg.InitFrom is { } init) InitialiseFrom(model, init);
            if (_cfg.DialogueChatAdapterRank is { } rank) AdaptForChat(model, rank, _cfg.InitFrom!, device);
        }
        else if (_cfg.Mode == "full")
        {
            var llmCfg = _cfg.LlmConfig! with { VocabSize = tokenizer.BaseVocabSize + 1, BosTokenId = tokenizer.BosId, EosTokenId = tokenizer.EosId };
            var llm = new LlamaForCausalLM(llmCfg);
            var vision = new ClipVisionModel(_cfg.VisionConfig!, projectionDim: null);
            ModuleInit.GptStyle(llm); ModuleInit.GptStyle(vision);
            var heads = new RsCapRetHeads(_cfg.VisionConfig!.HiddenSize, llmCfg.HiddenSize, _cfg.VisualPrefixTokens, _cfg.SharedDim);
            model = new RsCapRetModel(llm, vision, heads, tokenizer.BaseVocabSize);
        }
        else
        {
            var llm = LlamaForCausalLM.FromPretrained(_cfg.Llm!);
            var vision = ClipVisionModel.FromPretrained(_cfg.Vision!);
            foreach (var p in llm.parameters().Concat(vision.parameters())) p.requires_grad = false;
            var retId = llm.VocabSize;
            if (tokenizer.BaseVocabSize != retId) throw new InvalidOperationException($"{_cfg.Tokenizer}: {tokenizer.BaseVocabSize} pieces, but the LLM has {retId} tokens");
            using (no_grad())
            {
                var mean = llm.EmbeddingWeight.mean([0], keepdim: true);
                llm.GrowVocabulary(mean, llm.LmHeadWeight.mean([0], keepdim: true));
            }
            // Only the [RET] rows of the embedding and LM head learn: the rest is masked out of their gradients.
            llm.EmbeddingWeight.requires_grad = true;
            llm.LmHeadWeight.requires_grad = true;
            var heads = new RsCapRetHeads(vision.Config.HiddenSize, llm.Config.HiddenSize, _cfg.VisualPrefixTokens, _cfg.SharedDim);
            model = new RsCapRetModel(llm, vision, heads, retId);
        }
        model.to(device);
        if (_cfg.Mode == "heads" && (_cfg.Precision == "bf16" || (_cfg.Precision == "auto" && device.type == DeviceType.CUDA)))
        {
            // Frozen backbones in bfloat16 (the [RET] rows train in their matrices' dtype); heads stay float32.
            model.Llm.to(ScalarType.BFloat16);
            model.Vision.to(ScalarType.BFloat16);
            _log("precision: bf16 backbones, float32 heads");
        }
        model.train();
        return model;
    }

    /// <summary>init_from's model, frozen, when a chat adapter trains: its [RET] vectors are the distillation's targets.</summary>
    private RsCapRetModel? _searchModel;

    /// <summary>
    /// Attaches low-rank adapters to the decoder (which freezes it) and leaves only the chat's heads ([RET] projection,
    /// turn reading) trainable; loads init_from again, frozen, as the search whose vectors the chat's [RET] should match.
    /// </summary>
    private void AdaptForChat(RsCapRetModel model, int rank, string init, Device device)
    {
        var count = model.Llm.AddLowRankAdapters(rank, alpha: rank, _cfg.Seed);
        foreach (var (name, p) in model.Heads.named_parameters()) p.requires_grad = ChatAdapterConfig.IsChatHead(name);
        _searchModel = RsCapRetModel.Load(init, device);
        foreach (var p in _searchModel.parameters()) p.requires_grad = false;
        _log($"chat adapter: rank {rank} on {model.Llm.AdaptableLayers().Count()} projections ({count:N0} parameters); decoder, embeddings and image side frozen at {init}, which stays the search");
    }

    /// <summary>
    /// Copies a trained model folder's decoder and heads into <paramref name="model"/> (same shapes required); a turn
    /// reading the folder's model lacks keeps its zero start.
    /// </summary>
    private void InitialiseFrom(RsCapRetModel model, string folder)
    {
        using var source = RsCapRetModel.Load(folder);
        static bool Frozen(string name) => name.StartsWith("vision.", StringComparison.Ordinal) || name.StartsWith("turn_encoder.", StringComparison.Ordinal);
        var weights = source.named_parameters().Where(p => !Frozen(p.name)).ToDictionary(p => p.name, p => p.parameter);
        var copied = 0;
        using (no_grad())
            foreach (var (name, p) in model.named_parameters())
            {
                if (Frozen(name)) continue;
                if (!weights.ContainsKey(name) && name.StartsWith("heads.turn_reading.", StringComparison.Ordinal) && !source.ReadsTurns) continue;
                if (!weights.TryGetValue(name, out var w)) throw new InvalidOperationException($"init_from {folder}: it has no parameter '{name}'");
                if (!w.shape.SequenceEqual(p.shape))
                    throw new InvalidOperationException($"init_from {folder}: '{name}' is [{string.Join(", ", w.shape)}], the config builds [{string.Join(", ", p.shape)}]");
                p.copy_(w);
                copied++;
            }
        _log($"decoder and heads initialised from {folder} ({copied} tensors)");
    }

    private Split LoadSplit(string split, IEnumerable<DatasetRef> datasets, LlamaTextTokenizer tokenizer, ImagePreprocessor pre, int? limit,
        RsCapRetModel model, int views)
    {
        var images = TrainingRun.LoadSplit(datasets, split, limit);
        Tensor? pixels = null, features = null;
        if (FrozenVision)
            features = PooledFeatureCache.Load(model.Vision, VisionDirectory, images, views, _cfg.FeatureCache ?? Path.Combine(_outDir, "features"), _log);
        else
            pixels = TrainingRun.DecodeImages(images, pre);
        var captions = new List<int[]>[images.Count];
        for (var i = 0; i < images.Count; i++)
        {
            captions[i] = images[i].Captions.Select(c =>
            {
                var ids = tokenizer.EncodeCaptionForTraining(c).ToArray();
                return ids.Length <= _cfg.MaxCaptionTokens ? ids : [.. ids[..(_cfg.MaxCaptionTokens - 2)], tokenizer.RetId, tokenizer.EosId];
            }).ToList();
        }
        return new Split(pixels, captions, images, Features: features);
    }

    /// <summary>
    /// A group id per image: images that share a reference caption (after case, punctuation and spacing are
    /// normalised) are in one group, transitively. Union-find over the caption strings.
    /// </summary>
    public static int[] CaptionGroups(IReadOnlyList<IReadOnlyList<string>> captionsPerImage)
    {
        var parent = Enumerable.Range(0, captionsPerImage.Count).ToArray();
        int Find(int x) { while (parent[x] != x) x = parent[x] = parent[parent[x]]; return x; }
        var firstImageWith = new Dictionary<string, int>();
        for (var i = 0; i < captionsPerImage.Count; i++)
            foreach (var caption in captionsPerImage[i])
            {
                var key = NormaliseCaption(caption);
                if (key.Length == 0) continue;
                if (firstImageWith.TryGetValue(key, out var j)) parent[Find(i)] = Find(j);
                else firstImageWith[key] = i;
            }
        return Enumerable.Range(0, parent.Length).Select(Find).ToArray();
    }

    private static string NormaliseCaption(string caption) =>
        string.Join(' ', new string(caption.ToLowerInvariant().Select(c => char.IsLetterOrDigit(c) ? c : ' ').ToArray())
            .Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>[i, j] = 1 where batch items i and j are in the same caption group.</summary>
    public static Tensor SameGroup(IReadOnlyList<int> groups) => PairMask(groups.Count, (i, j) => groups[i] == groups[j]);

    /// <summary>[i, j] = 1 where the batch's texts i and j are the same caption (UCM repeats captions across images of a class).</summary>
    public static Tensor SameCaption(IReadOnlyList<int[]> captions) =>
        PairMask(captions.Count, (i, j) => i == j || captions[i].AsSpan().SequenceEqual(captions[j]));

    /// <summary>An [n, n] float mask of InfoNCE positives: 1 where <paramref name="positive"/> holds.</summary>
    private static Tensor PairMask(int n, Func<int, int, bool> positive)
    {
        var mask = new float[n * n];
        for (var i = 0; i < n; i++)
            for (var j = 0; j < n; j++)
                mask[i * n + j] = positive(i, j) ? 1 : 0;
        return tensor(mask, [n, n]);
    }

    private (double Loss, double Caption, double Contrastive) TrainStep(RsCapRetModel model, Adam optimizer, Split data, int[] idx, int step, double lr, Device device)
    {
        using var scope = NewDisposeScope();
        var rng = new Random(TrainingRun.StepSeed(_cfg.Seed, step));
        foreach (var (g, i) in optimizer.ParamGroups.Select((g, i) => (g, i))) g.LearningRate = i == 0 ? lr : lr * ReadingLrScale;
        optimizer.zero_grad();

        Tensor pooled;
        if (data.Features is { } features)
        {
            // A frozen backbone's cached vectors: one of the image's dihedral views per step.
            long views = features.shape[0], count = features.shape[1];
            var rows = idx.Select(i => rng.Next((int)views) * count + i).ToArray();
            pooled = features.view(-1, features.shape[2]).index_select(0, tensor(rows)).to(device);
        }
        else
        {
            var pixels = data.Pixels!.index_select(0, tensor(idx.Select(i => (long)i).ToArray())).to(device);
            if (_cfg.Augment) pixels = TrainingRun.AugmentOverhead(pixels, rng, _cfg.MinCropScale);
            pooled = model.PooledImage(pixels);
        }
        var chosen = idx.Select(i => data.Captions[i][rng.Next(data.Captions[i].Count)]).ToArray();
        var prefix = model.VisualPrefix(pooled);
        var dialogues = _cfg.DialogueProbability > 0 ? Dialogues(data, idx, rng, model) : new DialogueSample?[idx.Length];
        var readings = model.ReadsTurns ? TurnReadings(model, dialogues) : null;
        if (_cfg.DialogueTurnWordDropout > 0)
            for (var b = 0; b < dialogues.Length; b++)
                if (dialogues[b] is { } d) dialogues[b] = WithoutSomeWords(d, rng);

        // Captioning: [prefix_i][caption_i] and, with probability p, [prefix_i][caption_i][prefix_j][caption_j].
        var sequences = new List<(Tensor Embeds, long[] Labels, long[]? AnswerLabels)>();
        var retRows = new List<(int Row, int Position, IReadOnlySet<int> Positives, string? Query)>();
        for (var b = 0; b < idx.Length; b++)
        {
            if (dialogues[b] is { } dialogue)
            {
                var (dEmbeds, dLabels, answerLabels, retPositions) = DialogueSequence(model, dialogue, prefix, readings, device);
                retRows.AddRange(retPositions.Select(r => (b, r.Position, r.Positives, r.Query)));
                sequences.Add((dEmbeds, dLabels, answerLabels));
                continue;
            }
            var parts = new List<(int Image, int[] Ids)> { (b, chosen[b]) };
            if (rng.NextDouble() < _cfg.ConcatProbability) { var j = (b + 1 + rng.Next(idx.Length - 1)) % idx.Length; parts.Add((j, chosen[j])); }
            var embeds = new List<Tensor>();
            var labels = new List<long>();
            foreach (var (image, ids) in parts)
            {
                embeds.Add(prefix[image]);
                labels.AddRange(Enumerable.Repeat(-100L, model.Heads.PrefixTokens));
                embeds.Add(model.Llm.EmbedTokens(tensor(ids.Select(i => (long)i).ToArray(), device: device)));
                for (var t = 0; t < ids.Length; t++) labels.Add(t + 1 < ids.Length ? ids[t + 1] : -100L);
            }
            // The position before each text block's BOS is the last prefix token; it predicts nothing.
            sequences.Add((cat(embeds, 0), labels.ToArray(), null));
        }
        var maxLen = sequences.Max(s => s.Labels.Length);
        var hidden = model.Llm.EmbeddingWeight.shape[1];
        var batchEmbeds = zeros(idx.Length, maxLen, hidden, dtype: model.Llm.EmbeddingWeight.dtype, device: device);
        var mask = zeros(idx.Length, maxLen, ScalarType.Int64, device);
        var labelsAll = full(idx.Length, maxLen, Scalars.Of(-100L), ScalarType.Int64);
        var answerLabelsAll = full(idx.Length, maxLen, Scalars.Of(-100L), ScalarType.Int64);
        for (var b = 0; b < sequences.Count; b++)
        {
            var len = sequences[b].Labels.Length;
            batchEmbeds[b, TensorIndex.Slice(0, len)] = sequences[b].Embeds;
            mask[b, TensorIndex.Slice(0, len)] = 1;
            labelsAll[b, TensorIndex.Slice(0, len)] = tensor(sequences[b].Labels);
            if (sequences[b].AnswerLabels is { } answer) answerLabelsAll[b, TensorIndex.Slice(0, len)] = tensor(answer);
        }
        using var output = model.Llm.ForwardEmbeds(batchEmbeds, mask);
        var flatLogits = output.Logits.to_type(ScalarType.Float32).reshape(-1, output.Logits.shape[2]);
        var captionLoss = F.cross_entropy(flatLogits, labelsAll.to(device).reshape(-1), ignore_index: -100);

        // Contrastive: text-only passes [BOS caption [RET]] vs image vectors.
        var (textIds, textMask) = TokenBatch.PadRight(chosen.Select(c => (IReadOnlyList<int>)c[..^1]).ToList()); // drop EOS: ends at [RET]
        var ret = model.RetEmbedding(textIds, textMask);
        var img = F.normalize(model.Heads.image_to_shared_forward(pooled), dim: -1);
        var positives = data.CaptionGroups is { } groups ? SameGroup(idx.Select(i => groups[i]).ToList())
            : _cfg.DuplicateCaptionsArePositives ? SameCaption(chosen) : null;
        var contrastive = Losses.InfoNce(model.LogitsPerImage(img, ret), positives);

        var loss = captionLoss * Scalars.Of(_cfg.CaptionLossWeight) + contrastive * Scalars.Of(_cfg.ContrastiveLossWeight);
        if (_cfg.DialogueAnswerLossWeight > 0 && sequences.Any(s => s.AnswerLabels is not null))
        {
            // The dialogue answers' tokens on their own: "yes" or "the first one" is one token among thousands above.
            var answerLoss = F.cross_entropy(flatLogits, answerLabelsAll.to(device).reshape(-1), ignore_index: -100);
            loss = loss + answerLoss * Scalars.Of(_cfg.DialogueAnswerLossWeight);
        }
        if (retRows.Count > 0 && (_cfg.DialogueRetrievalLossWeight > 0 || _cfg.DialogueRetDistillWeight > 0))
        {
            // Dialogue [RET] vectors (hidden state where [RET] is the input, as in generation) toward the images they ask for.
            var hiddenAtRet = stack(retRows.Select(r => output.LastHiddenState[r.Row, r.Position]).ToList());
            var queries = model.RetVectorFromHidden(hiddenAtRet);
            if (_cfg.DialogueRetrievalLossWeight > 0)
            {
                var logits = model.Heads.LogitScale.exp() * matmul(queries, img.t());
                var dialogueRetrieval = Losses.SoftTargetTextToImage(logits, retRows.Select(r => r.Positives).ToList());
                loss = loss + dialogueRetrieval * Scalars.Of(_cfg.DialogueRetrievalLossWeight);
            }
            var named = Enumerable.Range(0, retRows.Count).Where(k => retRows[k].Query is not null).ToList();
            if (_cfg.DialogueRetDistillWeight > 0 && named.Count > 0)
            {
                // Toward the search's own vector of the thing asked for, held fixed: the dialogue should not move search
                // (with a chat adapter, init_from's frozen search is the target).
                Tensor target;
                using (no_grad())
                {
                    var (ids, idsMask) = TokenBatch.PadRight(named.Select(k => _tokenizer!.EncodeForRetrieval(retRows[k].Query!)).ToList());
                    target = (_searchModel ?? model).RetEmbedding(ids, idsMask).detach();
                }
                var asked = queries.index_select(0, tensor(named.Select(k => (long)k).ToArray(), device: queries.device));
                var distill = (Scalars.Of(1.0) - (asked * target).sum(1)).mean();
                loss = loss + distill * Scalars.Of(_cfg.DialogueRetDistillWeight);
            }
        }
        loss.backward();
        if (_cfg.Mode == "heads") MaskToRetRow(model);
        optimizer.step();
        using (no_grad()) model.Heads.LogitScale.clamp_(Scalars.Of(0.0), Scalars.Of(Math.Log(100)));
        return (loss.item<float>(), captionLoss.item<float>(), contrastive.item<float>());
    }

    /// <summary>The frozen turn encoder's vectors of user turns met so far (CPU): most are asked again and again.</summary>
    private readonly Dictionary<string, Tensor> _turnVectors = new(StringComparer.Ordinal);

    /// <summary>Each distinct user turn of the batch's dialogues → its reading [hidden] (trained through turn_reading).</summary>
    private Dictionary<string, Tensor> TurnReadings(RsCapRetModel model, DialogueSample?[] dialogues)
    {
        var texts = dialogues.OfType<DialogueSample>().SelectMany(d => d.Turns).OfType<DialogueTextTurn>().Select(t => t.UserText).OfType<string>()
            .Distinct(StringComparer.Ordinal).ToList();
        if (texts.Count == 0) return [];
        var missing = texts.Where(t => !_turnVectors.ContainsKey(t)).ToList();
        if (missing.Count > 0)
        {
            using var vectors = model.TurnSentenceVectors(missing).cpu();
            for (var i = 0; i < missing.Count; i++) _turnVectors[missing[i]] = vectors[i].clone().DetachFromDisposeScope();
        }
        var device = model.Device;
        var readings = model.TurnReadings(stack(texts.Select(t => _turnVectors[t]).ToList()).to(device));
        return texts.Select((t, i) => (t, readings[i])).ToDictionary(x => x.t, x => x.Item2, StringComparer.Ordinal);
    }

    /// <summary>The dialogue with each user turn's words left out at <see cref="TrainConfig.DialogueTurnWordDropout"/> (its reading stays).</summary>
    private DialogueSample WithoutSomeWords(DialogueSample dialogue, Random rng)
    {
        var bare = ChatFormat.UserTurnWithoutWords(_tokenizer!);
        return dialogue with
        {
            Turns = [.. dialogue.Turns.Select(t => t is DialogueTextTurn { UserText: not null } user && rng.NextDouble() < _cfg.DialogueTurnWordDropout
                ? user with { Ids = bare } : t)],
        };
    }

    /// <summary>Dialogues for a <see cref="TrainConfig.DialogueProbability"/> share of the batch, over the batch's own images.</summary>
    private DialogueSample?[] Dialogues(Split data, int[] idx, Random rng, RsCapRetModel model)
    {
        var pool = idx.Select(i => new DialogueImage(SceneClassNames.ClassOf(data.Images[i].Dataset, data.Images[i].ImagePath), data.Images[i].Captions,
            data.CaptionGroups is { } g ? g[i] : i)).ToList();
        var generator = new DialogueGenerator(_tokenizer!, pool, model.Llm.Config.MaxPositionEmbeddings, model.Heads.PrefixTokens, _cfg.DialogueExtendedPhrasings,
            model.ReadsTurns, _cfg.DialogueRetrievalAnswerNamesThing, _cfg.DialogueQuestionPhrasings, _cfg.DialogueFollowUpRequests);
        return idx.Select((_, b) => rng.NextDouble() < _cfg.DialogueProbability
            ? _cfg.DialogueFollowUps > 0 ? generator.WithFollowUps(generator.Generate(b, rng), rng.Next(_cfg.DialogueFollowUps + 1), rng) : generator.Generate(b, rng)
            : null).ToArray();
    }

    /// <summary>
    /// A dialogue's input embeddings and next-token labels (the model's turns and image descriptions are trained, the
    /// user's turns and bare images are context), the labels of its answers alone, and the position of each trained
    /// answer's [RET] with the images it is trained toward. With <paramref name="readings"/>, each user turn is preceded by
    /// its reading, one position that predicts nothing.
    /// </summary>
    private static (Tensor Embeds, long[] Labels, long[] AnswerLabels, List<(int Position, IReadOnlySet<int> Positives, string? Query)> Rets) DialogueSequence(
        RsCapRetModel model, DialogueSample dialogue, Tensor prefix, Dictionary<string, Tensor>? readings, Device device)
    {
        var embeds = new List<Tensor>();
        var labels = new List<long>();
        var answerLabels = new List<long>();
        var rets = new List<(int, IReadOnlySet<int>, string?)>();
        void Tokens(int[] ids, bool trained, bool isAnswer, IReadOnlySet<int>? positives, string? query = null)
        {
            if (isAnswer && positives is not null && Array.LastIndexOf(ids, model.RetTokenId) is var r and >= 0) rets.Add((labels.Count + r, positives, query));
            embeds.Add(model.Llm.EmbedTokens(tensor(ids.Select(i => (long)i).ToArray(), device: device)));
            for (var t = 0; t < ids.Length; t++)
            {
                var label = trained && t + 1 < ids.Length ? ids[t + 1] : -100L;
                labels.Add(label);
                answerLabels.Add(isAnswer ? label : -100L);
            }
        }
        for (var t = 0; t < dialogue.Turns.Count; t++)
        {
            switch (dialogue.Turns[t])
            {
                case DialogueImageTurn image:
                    embeds.Add(prefix[image.Image]);
                    labels.AddRange(Enumerable.Repeat(-100L, model.Heads.PrefixTokens));
                    answerLabels.AddRange(Enumerable.Repeat(-100L, model.Heads.PrefixTokens));
                    if (image.Description is { } d) Tokens(d, true, false, null);
                    break;
                case DialogueTextTurn text:
                    if (readings is not null && text.UserText is { } words)
                    {
                        embeds.Add(readings[words].unsqueeze(0));
                        labels.Add(-100L);
                        answerLabels.Add(-100L);
                    }
                    Tokens(text.Ids, text.Trained, text.Trained, text.RetPositives, text.RetQuery);
                    break;
            }
        }
        return (cat(embeds, 0), labels.ToArray(), answerLabels.ToArray(), rets);
    }

    private static void MaskToRetRow(RsCapRetModel model)
    {
        foreach (var w in new[] { model.Llm.EmbeddingWeight, model.Llm.LmHeadWeight })
        {
            if (w.grad is not { } g) continue;
            using var keep = zeros_like(g);
            keep[model.RetTokenId] = 1;
            g.mul_(keep);
        }
    }

    private static (double CaptionLoss, RecallAtK TextToImage, RecallAtK ImageToText, Dictionary<string, RecallAtK> ByDataset) Validate(RsCapRetModel model, Split val, Device device)
    {
        model.eval();
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var imgs = new List<Tensor>();
            double capLoss = 0; var capN = 0;
            for (var s = 0; s < val.Images.Count; s += 64)
            {
                var n = Math.Min(64, val.Images.Count - s);
                var pooled = val.Features is { } f ? f[0].narrow(0, s, n).to(device) : model.PooledImage(val.Pixels!.narrow(0, s, n).to(device));
                imgs.Add(model.ImageEmbeddingFromPooled(pooled));
                // Validation caption loss on each image's first caption, no concatenation.
                var ids = Enumerable.Range(s, n).Select(i => val.Captions[i][0]).ToArray();
                var (idTensor, mask) = TokenBatch.PadRight(ids.Select(c => (IReadOnlyList<int>)c).ToList());
                var labels = full(n, idTensor.shape[1] + model.Heads.PrefixTokens, Scalars.Of(-100L), ScalarType.Int64);
                for (var b = 0; b < n; b++)
                    labels[b, TensorIndex.Slice(model.Heads.PrefixTokens, model.Heads.PrefixTokens + ids[b].Length - 1)] = tensor(ids[b][1..].Select(i => (long)i).ToArray());
                var logits = model.CaptionLogitsFromPooled(pooled, idTensor, mask);
                capLoss += F.cross_entropy(logits.to_type(ScalarType.Float32).reshape(-1, logits.shape[2]), labels.to(device).reshape(-1), ignore_index: -100).item<float>() * n;
                capN += n;
            }
            var imageVecs = cat(imgs, 0);
            // Each validation dataset ranks its texts among its own images (as its published figures do); the
            // epoch's figure is the mean over datasets.
            var byDataset = new Dictionary<string, RecallAtK>();
            var i2tAll = new List<RecallAtK>();
            foreach (var group in Enumerable.Range(0, val.Images.Count).GroupBy(i => val.Images[i].Dataset))
            {
                var members = group.ToArray();
                var texts = new List<(int Image, int[] Ids)>();
                for (var m = 0; m < members.Length; m++) foreach (var c in val.Captions[members[m]]) texts.Add((m, c[..^1]));
                var textVecs = new List<Tensor>();
                for (var s = 0; s < texts.Count; s += 128)
                {
                    var (ids, mask) = TokenBatch.PadRight(texts.Skip(s).Take(128).Select(t => (IReadOnlyList<int>)t.Ids).ToList());
                    textVecs.Add(model.RetEmbedding(ids, mask));
                }
                var images = imageVecs.index_select(0, tensor(members.Select(i => (long)i).ToArray(), device: imageVecs.device));
                var matrix = TrainingRun.ToMatrix(matmul(cat(textVecs, 0), images.t()));
                var labelsT = texts.Select(t => t.Image).ToList();
                byDataset[group.Key] = RetrievalMetrics.TextToImage(matrix, labelsT);
                i2tAll.Add(RetrievalMetrics.ImageToText(matrix, labelsT));
            }
            return (capLoss / capN, RecallAtK.Average(byDataset.Values.ToList()), RecallAtK.Average(i2tAll), byDataset);
        }
        finally { model.train(); }
    }

    private void Export(RsCapRetModel model, LlamaTextTokenizer tokenizer, string dir)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        if (_cfg.DialogueChatAdapterRank is { } rank)
        {
            ExportChatAdapter(model, rank, dir);
            return;
        }
        Directory.CreateDirectory(dir);
        var config = new RsCapRetConfig
        {
            Name = _cfg.Name, Version = _cfg.Version, VisualPrefixTokens = _cfg.VisualPrefixTokens, SharedDim = _cfg.SharedDim,
            RetTokenId = model.RetTokenId, Tokenizer = "tokenizer.model", ImageSize = model.ImageSize, Gsd = _cfg.Gsd, GsdRange = _cfg.GsdRange,
            Llm = _cfg.Mode is "full" or "frozen-vision" ? "llm" : _cfg.Llm!, Vision = _cfg.Mode == "full" ? "vision" : _cfg.Vision!,
            Dialogue = _cfg.DialogueProbability > 0, TurnEncoder = _cfg.DialogueTurnEncoder, RetrievalAnswerNamesThing = _cfg.DialogueRetrievalAnswerNamesThing,
        };
        if (FrozenVision) model.Llm.SavePretrained(Path.Combine(dir, "llm"));
        if (_cfg.Mode == "full")
        {
            model.Llm.SavePretrained(Path.Combine(dir, "llm"));
            model.Vision.SavePretrained(Path.Combine(dir, "vision"));
        }
        File.Copy(_cfg.Tokenizer, Path.Combine(dir, "tokenizer.model"), true);
        model.SaveHeads(dir, config);
    }

    /// <summary>
    /// init_from's folder as it is (its search and captions, its catalogue identity) with the trained adapter in chat/
    /// and rscapret.json naming it; a chat adapter init_from had is replaced.
    /// </summary>
    private void ExportChatAdapter(RsCapRetModel model, int rank, string dir)
    {
        var init = Path.GetFullPath(_cfg.InitFrom!);
        var baseConfig = RsCapRetConfig.Load(init);
        CopyFolder(init, dir, skip: baseConfig.Chat is { } old ? Path.GetFullPath(baseConfig.Resolve(init, old)) : null);
        // Parts named outside init_from's folder are named by their full path, so the copy still finds them.
        string Kept(string p)
        {
            if (p.StartsWith(VisionBackbones.NamedPrefix, StringComparison.Ordinal)) return p;
            var full = Path.GetFullPath(baseConfig.Resolve(init, p));
            return full.StartsWith(init + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? p : full;
        }
        var config = baseConfig with
        {
            Llm = Kept(baseConfig.Llm),
            Vision = Kept(baseConfig.Vision),
            Tokenizer = Kept(baseConfig.Tokenizer),
            Heads = Kept(baseConfig.Heads),
            Chat = "chat",
        };
        config.Save(dir);
        new ChatAdapterConfig
        {
            Version = _cfg.Version, Rank = rank, Alpha = rank, BaseHeadsSha256 = RsCapRetModel.HeadsSha256(init),
            TurnEncoder = _cfg.DialogueTurnEncoder, RetrievalAnswerNamesThing = _cfg.DialogueRetrievalAnswerNamesThing,
        }.Write(Path.Combine(dir, "chat"), model);
    }

    private static void CopyFolder(string from, string to, string? skip)
    {
        Directory.CreateDirectory(to);
        foreach (var file in Directory.GetFiles(from)) File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        foreach (var sub in Directory.GetDirectories(from))
            if (!string.Equals(Path.GetFullPath(sub), skip, StringComparison.Ordinal)) CopyFolder(sub, Path.Combine(to, Path.GetFileName(sub)), skip);
    }

    private static string ByDataset(EpochResult h) =>
        h.ValTextToImageByDataset is null ? "" : string.Join(";", h.ValTextToImageByDataset.Select(kv => FormattableString.Invariant($"{kv.Key}={kv.Value.Mean:F2}")));

    /// <summary>history.csv and a loss/metric plot (SVG) in the run folder.</summary>
    private void WriteReport(List<EpochResult> history)
    {
        var csv = new StringBuilder("epoch,step,train_loss,caption_loss,contrastive_loss,val_caption_loss,t2i_r1,t2i_r5,t2i_r10,t2i_mr,i2t_mr,seconds,t2i_mr_by_dataset\n");
        foreach (var h in history)
            csv.AppendLine(FormattableString.Invariant($"{h.Epoch},{h.Step},{h.TrainLoss:F5},{h.CaptionLoss:F5},{h.ContrastiveLoss:F5},{h.ValCaptionLoss:F5},{h.ValTextToImage.R1:F2},{h.ValTextToImage.R5:F2},{h.ValTextToImage.R10:F2},{h.ValTextToImage.Mean:F2},{h.ValImageToText.Mean:F2},{h.Seconds:F1},{ByDataset(h)}"));
        File.WriteAllText(Path.Combine(_outDir, "history.csv"), csv.ToString());
        File.WriteAllText(Path.Combine(_outDir, "training.svg"), SvgPlot.Lines("RS-CapRet training", "epoch",
        [
            ("train loss", history.Select(h => (double)h.Epoch).ToArray(), history.Select(h => h.TrainLoss).ToArray(), false),
            ("val caption loss", history.Select(h => (double)h.Epoch).ToArray(), history.Select(h => h.ValCaptionLoss).ToArray(), false),
            ("val text→image mR (%)", history.Select(h => (double)h.Epoch).ToArray(), history.Select(h => h.ValTextToImage.Mean).ToArray(), true),
        ]));
    }
}
