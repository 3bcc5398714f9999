using System.Text.Json;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Training.Datasets;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Training;

/// <summary>
/// Remote-sensing adaptation of an imported ResNet backbone (the paper's CLIP-Cap-4 step, with a ResNet vision tower):
/// symmetric InfoNCE between the backbone's pooled vector and a text tower trained from scratch on the captions (or a
/// frozen pretrained sentence encoder's vectors of them, each distinct caption embedded once, through a linear; or
/// that encoder with its last <c>text_encoder_trainable_layers</c> training over the kept hidden states of the ones below). The
/// blocks before the last <c>trainable_blocks</c> stay frozen, so their output is computed once per image and
/// dihedral view and cached (float16) — on two CPU cores the full backbone's backward pass would not fit the budget.
/// The best epoch by the mean over validation datasets of text→image mR (fixed before training) is exported to
/// best/vision/: an ordinary ResNet backbone folder that RS-CapRet configs name as their "vision".
/// </summary>
public sealed class BackboneClipTrainer
{
    private readonly ClipTrainConfig _cfg;
    private readonly string _outDir;
    private readonly Action<string> _log;

    public Action<int, int>? StepProgress { get; init; }

    public BackboneClipTrainer(ClipTrainConfig cfg, string outDir, Action<string> log)
    {
        if (cfg.VisionBackbone is null || (cfg.TextConfig is null && cfg.TextEncoder is null))
            throw new ArgumentException("a backbone adaptation run needs vision_backbone and text_config or text_encoder", nameof(cfg));
        _cfg = cfg; _outDir = Path.GetFullPath(outDir); _log = log;
    }

    /// <summary>
    /// Frozen-block outputs [views, N, C, H, W] (float16), the images, and their captions: CLIP token rows for a text
    /// tower, or for a frozen encoder its vectors [distinct captions, width] and each image's rows into them.
    /// </summary>
    /// <remarks>
    /// When the encoder's last layers train, <c>CaptionVectors</c> holds instead the hidden states entering them, the
    /// captions' tokens one after another [tokens + 1, width] (the last row zeros, for padding); <c>CaptionTokens</c>
    /// gives each caption's first row and count.
    /// </remarks>
    private sealed record Split(Tensor Features, long[][][] Captions, Tensor? CaptionVectors, long[][] CaptionRows, IReadOnlyList<CaptionedImage> Images,
        (long Start, long Count)[]? CaptionTokens = null);

    public IReadOnlyList<ClipEpochResult> Run(CancellationToken ct = default)
    {
        if (_cfg.Threads is { } th) set_num_threads(th);
        Directory.CreateDirectory(_outDir);
        File.WriteAllText(Path.Combine(_outDir, "train-clip-config.json"), _cfg.ToJson());
        var device = TorchDevice.Resolve(_cfg.Device);
        manual_seed(_cfg.Seed);
        var tokenizer = _cfg.TextConfig is null ? null : ClipTrainer.LoadTokenizer(_cfg.TokenizerDirectory);
        using var textEncoder = _cfg.TextEncoder is null ? null : BertSentenceEncoder.FromPretrained(_cfg.TextEncoder);
        var backboneDir = _cfg.VisionBackbone!;
        if (VisionBackbones.FamilyOf(backboneDir) != ResNetConfig.Family)
            throw new InvalidOperationException($"{backboneDir}: vision_backbone must be a ResNet backbone folder (model_type \"resnet\"); CLIP towers adapt through 'clip'");
        var backbone = ResNetVisionModel.FromPretrained(backboneDir, device);
        var blocks = backbone.ResidualBlocks.Count;
        if (_cfg.TrainableBlocks > blocks) throw new InvalidOperationException($"trainable_blocks {_cfg.TrainableBlocks}: {backboneDir} has {blocks} residual blocks");
        var frozen = blocks - _cfg.TrainableBlocks;
        var textLayers = _cfg.TextEncoderTrainableLayers;
        if (textEncoder is not null && textLayers > textEncoder.LayerCount)
            throw new InvalidOperationException($"text_encoder_trainable_layers {textLayers}: {_cfg.TextEncoder} has {textEncoder.LayerCount} layers");

        var cacheDir = _cfg.FeatureCache ?? Path.Combine(_outDir, "features");
        var train = LoadSplit(_cfg.TrainSplit, _cfg.Datasets, tokenizer, textEncoder, backbone, backboneDir, frozen, _cfg.FeatureViews, cacheDir, _cfg.MaxTrainImages);
        var val = LoadSplit(_cfg.ValSplit, TrainingRun.ValidationDatasets(_cfg.Datasets, _cfg.ValDatasets), tokenizer, textEncoder, backbone, backboneDir, frozen, 1, cacheDir, _cfg.MaxValImages);

        var text = tokenizer is null ? null : _cfg.TextConfig! with { VocabSize = tokenizer.VocabSize, EosTokenId = tokenizer.EndId };
        using var model = new BackboneDualEncoder(backbone, text, textEncoder?.HiddenSize ?? 0, _cfg.ProjectionDim, _cfg.LogitScaleInit,
            textLayers > 0 ? textEncoder!.TopLayers(textLayers) : null);
        backbone.TrainOnlyLastBlocks(_cfg.TrainableBlocks);
        model.to(device);
        model.train();
        var (backboneParams, others) = model.TrainableParameters();
        static bool InTextEncoder((string Name, Parameter Parameter) p) => p.Name.StartsWith("text_encoder_top.", StringComparison.Ordinal);
        var textParams = others.Where(InTextEncoder).ToList();
        var rest = others.Where(p => !InTextEncoder(p)).ToList();
        var textSide = textEncoder is null ? "text tower"
            : textLayers == 0 ? $"frozen text encoder {_cfg.TextEncoder} ({textEncoder.Config.Pooling} pooling); text"
            : $"text encoder {_cfg.TextEncoder} ({textEncoder.Config.Pooling} pooling), last {textLayers} of {textEncoder.LayerCount} layers train ({textParams.Sum(p => p.Parameter.numel()):N0} parameters); text";
        _log($"train: {train.Images.Count} images × {_cfg.FeatureViews} views; val: {val.Images.Count} images; device {device}; " +
             $"backbone: {backboneDir}, last {_cfg.TrainableBlocks} of {blocks} blocks train ({backboneParams.Sum(p => p.Parameter.numel()):N0} parameters), " +
             textSide + $" and image projections {rest.Sum(p => p.Parameter.numel()):N0}");

        var backboneLr = _cfg.BackboneLearningRate ?? _cfg.LearningRate;
        var textLr = _cfg.TextEncoderLearningRate ?? backboneLr;
        bool Decays(string name, Tensor p) => p.dim() >= 2 && !name.Contains("position_embedding");
        var optimizer = optim.AdamW(
        [
            new AdamW.ParamGroup(backboneParams.Where(p => Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = backboneLr, weight_decay = _cfg.WeightDecay }),
            new AdamW.ParamGroup(backboneParams.Where(p => !Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = backboneLr, weight_decay = 0 }),
            new AdamW.ParamGroup(rest.Where(p => Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = _cfg.LearningRate, weight_decay = _cfg.WeightDecay }),
            new AdamW.ParamGroup(rest.Where(p => !Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = _cfg.LearningRate, weight_decay = 0 }),
            new AdamW.ParamGroup(textParams.Where(p => Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = textLr, weight_decay = _cfg.WeightDecay }),
            new AdamW.ParamGroup(textParams.Where(p => !Decays(p.Name, p.Parameter)).Select(p => p.Parameter), new AdamW.Options { LearningRate = textLr, weight_decay = 0 }),
        ], _cfg.LearningRate, beta2: 0.98, eps: 1e-6);
        double[] lrScale = [backboneLr / _cfg.LearningRate, backboneLr / _cfg.LearningRate, 1, 1, textLr / _cfg.LearningRate, textLr / _cfg.LearningRate];

        var bestDir = Path.Combine(_outDir, "best", "vision");
        return ClipTrainer.RunEpochs(_cfg, _outDir, _log, StepProgress, model, optimizer, train.Images.Count, () => model.LogitScale,
            (idx, step, lr) =>
            {
                var group = 0;
                foreach (var g in optimizer.ParamGroups) g.LearningRate = lr * lrScale[group++];
                return TrainStep(model, optimizer, train, idx, step, frozen, device);
            },
            () => Validate(model, val, frozen, device),
            epoch => Export(model.Vision, bestDir, epoch, blocks), "adapted backbone exported to " + bestDir, ct);
    }

    private Split LoadSplit(string split, IEnumerable<DatasetRef> datasets, ClipBpeTokenizer? tokenizer, BertSentenceEncoder? textEncoder, ResNetVisionModel backbone, string backboneDir,
        int frozen, int views, string cacheDir, int? limit)
    {
        var images = TrainingRun.LoadSplit(datasets, split, limit);
        if (images.Count == 0) throw new InvalidOperationException($"no images in split '{split}' of {string.Join(", ", datasets.Select(d => d.Path))}");
        long[] shape;
        using (no_grad())
        using (var probe = backbone.Through(zeros(1, 3, backbone.ImageSize, backbone.ImageSize, device: backbone.parameters().First().device), frozen))
            shape = probe.shape[1..];
        var features = PooledFeatureCache.Load($"resnet-blocks{frozen}", x => backbone.Through(x, frozen), shape, ScalarType.Float16,
            backbone, backboneDir, images, views, cacheDir, _log);
        if (tokenizer is not null)
            return new Split(features, images.Select(im => im.Captions.Select(c => tokenizer.EncodeForModel(c, _cfg.ContextLength)).ToArray()).ToArray(), null, [], images);
        // A frozen encoder: each distinct caption once (RSICD and UCM repeat many word for word).
        var rowOf = new Dictionary<string, long>(StringComparer.Ordinal);
        var distinct = new List<string>();
        long Row(string caption)
        {
            if (rowOf.TryGetValue(caption, out var r)) return r;
            distinct.Add(caption);
            return rowOf[caption] = distinct.Count - 1;
        }
        var rows = images.Select(im => im.Captions.Select(Row).ToArray()).ToArray();
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var layers = _cfg.TextEncoderTrainableLayers;
        if (layers == 0)
        {
            var vectors = textEncoder!.Embed(distinct);
            _log($"{split}: {distinct.Count:N0} distinct captions of {rows.Sum(r => r.Length):N0} embedded by the frozen text encoder in {watch.Elapsed.TotalSeconds:F0} s");
            return new Split(features, [], vectors, rows, images);
        }
        var (hidden, tokens) = HiddenStates(textEncoder!, distinct, textEncoder!.LayerCount - layers);
        _log($"{split}: {distinct.Count:N0} distinct captions of {rows.Sum(r => r.Length):N0} through the text encoder's frozen first {textEncoder.LayerCount - layers} layers " +
             $"in {watch.Elapsed.TotalSeconds:F0} s ({hidden.shape[0] - 1:N0} tokens, up to {tokens.Max(t => t.Count)} a caption, {hidden.numel() * 4 / (1 << 20):N0} MiB)");
        return new Split(features, [], hidden, rows, images, tokens);
    }

    /// <summary>
    /// Hidden states after the encoder's first <paramref name="layers"/> layers (CPU, float32): every text's tokens one
    /// after another, then a row of zeros [tokens + 1, width]; and each text's first row and token count.
    /// </summary>
    private static (Tensor Hidden, (long Start, long Count)[] Tokens) HiddenStates(BertSentenceEncoder encoder, List<string> texts, int layers, int batchSize = 64)
    {
        using var _ = no_grad();
        var device = encoder.parameters().First().device;
        var encoded = texts.Select(encoder.Encode).ToArray();   // once: the lengths place each text, the rows feed the batches
        var lengths = encoded.Select(e => (long)e.Length).ToArray();
        var tokens = new (long Start, long Count)[texts.Count];
        for (long i = 0, start = 0; i < texts.Count; start += lengths[i], i++) tokens[i] = (start, lengths[i]);
        var hidden = zeros(lengths.Sum() + 1, encoder.HiddenSize);
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => lengths[i]).ToArray();
        for (var s = 0; s < order.Length; s += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = order.Skip(s).Take(batchSize).ToArray();
            var (ids, mask) = BertSentenceEncoder.Batch(chunk.Select(i => encoded[i]).ToList(), device);
            var h = encoder.HiddenAfter(ids, mask, layers).cpu();
            for (var j = 0; j < chunk.Length; j++)
                hidden.narrow(0, tokens[chunk[j]].Start, tokens[chunk[j]].Count).copy_(h[j].narrow(0, 0, tokens[chunk[j]].Count));
        }
        return (hidden, tokens);
    }

    /// <summary>Projected embeddings of caption rows: their fixed vectors, or their kept hidden states through the trained layers.</summary>
    private static Tensor CaptionEmbeds(BackboneDualEncoder model, Split data, long[] rows, Device device)
    {
        using var scope = NewDisposeScope();
        if (data.CaptionTokens is not { } tokens) return model.TextEmbedsFromVectors(data.CaptionVectors!.index_select(0, tensor(rows)).to(device)).MoveToOuterDisposeScope();
        // Each caption's rows, padded to the batch's longest with the zero row at the end; the mask hides the padding.
        var width = rows.Max(r => tokens[r].Count);
        var padding = data.CaptionVectors!.shape[0] - 1;
        var gather = rows.SelectMany(r => Enumerable.Range(0, (int)width).Select(j => j < tokens[r].Count ? tokens[r].Start + j : padding)).ToArray();
        var hidden = data.CaptionVectors.index_select(0, tensor(gather)).view(rows.Length, width, -1).to(device);
        var mask = tensor(rows.SelectMany(r => Enumerable.Range(0, (int)width).Select(j => j < tokens[r].Count ? 1L : 0L)).ToArray(), [rows.Length, width], device: device);
        return model.TextEmbedsFromHidden(hidden, mask).MoveToOuterDisposeScope();
    }

    private double TrainStep(BackboneDualEncoder model, AdamW optimizer, Split data, int[] idx, int step, int frozen, Device device)
    {
        using var scope = NewDisposeScope();
        var rng = new Random(TrainingRun.StepSeed(_cfg.Seed, step));
        optimizer.zero_grad();
        // One of the image's cached dihedral views per step, and one of its reference captions.
        long views = data.Features.shape[0], count = data.Features.shape[1];
        var rows = idx.Select(i => rng.Next((int)views) * count + i).ToArray();
        var features = data.Features.view([-1, .. data.Features.shape[2..]]).index_select(0, tensor(rows)).to_type(ScalarType.Float32).to(device);
        var logits = ClipModel.LogitsPerImage(model.ImageEmbedsFrom(features, frozen), TextEmbeds(model, data, idx, rng, device), model.LogitScale);
        var loss = Losses.InfoNce(logits);
        loss.backward();
        optimizer.step();
        using (no_grad()) model.LogitScale.clamp_(Scalars.Of(0.0), Scalars.Of(Math.Log(100)));
        return loss.item<float>();
    }

    /// <summary>Projected embeddings of one of each image's reference captions (drawn from <paramref name="rng"/>).</summary>
    private static Tensor TextEmbeds(BackboneDualEncoder model, Split data, int[] idx, Random rng, Device device)
    {
        if (data.CaptionVectors is not null)
            return CaptionEmbeds(model, data, idx.Select(i => data.CaptionRows[i][rng.Next(data.CaptionRows[i].Length)]).ToArray(), device);
        return model.TextEmbeds(ClipEvaluator.TextBatch(idx.Select(i => data.Captions[i][rng.Next(data.Captions[i].Length)]).ToList(), device));
    }

    /// <summary>Each validation dataset ranks its captions among its own images; the figures are the mean over datasets.</summary>
    private static (RecallAtK TextToImage, RecallAtK ImageToText, Dictionary<string, RecallAtK> ByDataset) Validate(BackboneDualEncoder model, Split val, int frozen, Device device)
    {
        model.eval();
        try
        {
            using var _ = no_grad();
            using var scope = NewDisposeScope();
            var imgs = new List<Tensor>();
            for (long s = 0; s < val.Images.Count; s += 64)
                imgs.Add(F.normalize(model.ImageEmbedsFrom(val.Features[0].narrow(0, s, Math.Min(64, val.Images.Count - s)).to_type(ScalarType.Float32).to(device), frozen), dim: -1));
            var imageVecs = cat(imgs, 0);
            var byDataset = new Dictionary<string, RecallAtK>();
            var i2t = new List<RecallAtK>();
            foreach (var group in Enumerable.Range(0, val.Images.Count).GroupBy(i => val.Images[i].Dataset))
            {
                var members = group.ToArray();
                var texts = val.CaptionVectors is null
                    ? members.SelectMany((image, m) => val.Captions[image].Select(c => (Image: m, Ids: c, Row: -1L))).ToList()
                    : members.SelectMany((image, m) => val.CaptionRows[image].Select(r => (Image: m, Ids: Array.Empty<long>(), Row: r))).ToList();
                var txts = new List<Tensor>();
                for (var s = 0; s < texts.Count; s += 128)
                {
                    var chunk = texts.Skip(s).Take(128).ToList();
                    txts.Add(F.normalize(val.CaptionVectors is not null
                        ? CaptionEmbeds(model, val, chunk.Select(t => t.Row).ToArray(), device)
                        : model.TextEmbeds(ClipEvaluator.TextBatch(chunk.Select(t => t.Ids).ToList(), device)), dim: -1));
                }
                var images = imageVecs.index_select(0, tensor(members.Select(i => (long)i).ToArray(), device: imageVecs.device));
                var matrix = TrainingRun.ToMatrix(matmul(cat(txts, 0), images.t()));
                var labels = texts.Select(t => t.Image).ToList();
                byDataset[group.Key] = RetrievalMetrics.TextToImage(matrix, labels);
                i2t.Add(RetrievalMetrics.ImageToText(matrix, labels));
            }
            return (RecallAtK.Average(byDataset.Values.ToList()), RecallAtK.Average(i2t), byDataset);
        }
        finally { model.train(); }
    }

    /// <summary>The adapted backbone as an ordinary ResNet folder; its config says where it came from.</summary>
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    private void Export(ResNetVisionModel backbone, string dir, int epoch, int blocks)
    {
        if (Directory.Exists(dir)) Directory.Delete(dir, true);
        backbone.SavePretrained(dir);
        var configPath = Path.Combine(dir, "config.json");
        var config = ResNetVisionModel.ReadConfig(configPath);
        var adapted = $"adapted by train-clip run '{_cfg.Name}' (epoch {epoch}; last {_cfg.TrainableBlocks} of {blocks} residual blocks trained on {string.Join(" + ", _cfg.Datasets.Select(d => d.Name))} {_cfg.TrainSplit} captions)";
        config = config with { Source = config.Source is null ? adapted : $"{config.Source}; {adapted}" };
        File.WriteAllText(configPath, JsonSerializer.Serialize(config, Indented));
    }
}
