using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model;

namespace RsCapRet.Training;

/// <summary>
/// A contrastive CLIP fine-tuning run (JSON): start from a Hugging Face CLIPModel folder (<see cref="Clip"/>), or
/// build a small dual encoder from <see cref="ClipConfig"/> and train it from scratch, or adapt an imported ResNet
/// backbone (<see cref="VisionBackbone"/>: its last <see cref="TrainableBlocks"/> residual blocks train, the rest is
/// frozen and its output cached) against a text tower built from <see cref="TextConfig"/>. The tokenizer folder
/// holds CLIP's vocab.json and merges.txt (default: the <see cref="Clip"/> folder).
/// </summary>
public sealed record ClipTrainConfig
{
    [JsonPropertyName("name")] public string Name { get; init; } = "clip-rs";
    [JsonPropertyName("datasets")] public DatasetRef[] Datasets { get; init; } = [];
    [JsonPropertyName("train_split")] public string TrainSplit { get; init; } = "train";
    [JsonPropertyName("val_split")] public string ValSplit { get; init; } = "val";
    [JsonPropertyName("val_datasets")] public string[]? ValDatasets { get; init; }
    [JsonPropertyName("clip")] public string? Clip { get; init; }
    [JsonPropertyName("clip_config")] public ClipConfig? ClipConfig { get; init; }
    /// <summary>A ResNet backbone folder or "backbone:NAME" to adapt (the paper's CLIP-Cap-4 step with a ResNet tower).</summary>
    [JsonPropertyName("vision_backbone")] public string? VisionBackbone { get; init; }
    /// <summary>The text tower trained from scratch beside <see cref="VisionBackbone"/>.</summary>
    [JsonPropertyName("text_config")] public ClipTowerConfig? TextConfig { get; init; }
    /// <summary>
    /// Instead of <see cref="TextConfig"/>: a pretrained sentence encoder folder or "backbone:NAME" (e.g.
    /// backbone:all-minilm-l6-v2), kept frozen; each distinct caption is embedded once and only a linear projection
    /// trains on the text side.
    /// </summary>
    [JsonPropertyName("text_encoder")] public string? TextEncoder { get; init; }
    /// <summary>
    /// How many of <see cref="TextEncoder"/>'s last layers train (0: none, the encoder stays frozen). The layers below
    /// run once per distinct caption and their hidden states are kept; the pooling and projection follow the trained layers.
    /// </summary>
    [JsonPropertyName("text_encoder_trainable_layers")] public int TextEncoderTrainableLayers { get; init; }
    /// <summary>Learning rate of the text encoder's trained layers (default: <see cref="BackboneLearningRate"/>, then <see cref="LearningRate"/>).</summary>
    [JsonPropertyName("text_encoder_learning_rate")] public double? TextEncoderLearningRate { get; init; }
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 256;
    [JsonPropertyName("logit_scale_init_value")] public double LogitScaleInit { get; init; } = 2.6592;
    /// <summary>How many of the backbone's last residual blocks train; the blocks before them run once per image and view.</summary>
    [JsonPropertyName("trainable_blocks")] public int TrainableBlocks { get; init; } = 2;
    /// <summary>Learning rate of the pretrained blocks (default: <see cref="LearningRate"/>); the text tower and projections use learning_rate.</summary>
    [JsonPropertyName("backbone_learning_rate")] public double? BackboneLearningRate { get; init; }
    /// <summary>Dihedral views per training image whose frozen-block outputs are cached (one is drawn per step).</summary>
    [JsonPropertyName("feature_views")] public int FeatureViews { get; init; } = 2;
    [JsonPropertyName("feature_cache")] public string? FeatureCache { get; init; }
    [JsonPropertyName("tokenizer")] public string? Tokenizer { get; init; }
    [JsonPropertyName("context_length")] public int ContextLength { get; init; } = 77;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 128;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 5e-4;
    [JsonPropertyName("weight_decay")] public double WeightDecay { get; init; } = 0.1;
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; } = 100;
    [JsonPropertyName("min_lr_ratio")] public double MinLrRatio { get; init; } = 0.0;
    [JsonPropertyName("epochs")] public int Epochs { get; init; } = 10;
    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;
    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; } = 200;
    [JsonPropertyName("early_stopping_patience")] public int EarlyStoppingPatience { get; init; } = 5;
    [JsonPropertyName("augment")] public bool Augment { get; init; } = true;
    /// <summary>Smallest area fraction of the random resized crop (1 = no crops).</summary>
    [JsonPropertyName("min_crop_scale")] public double MinCropScale { get; init; } = 0.5;
    [JsonPropertyName("device")] public string Device { get; init; } = "auto";
    [JsonPropertyName("threads")] public int? Threads { get; init; }
    [JsonPropertyName("max_steps")] public int? MaxSteps { get; init; }
    [JsonPropertyName("max_train_images")] public int? MaxTrainImages { get; init; }
    [JsonPropertyName("max_val_images")] public int? MaxValImages { get; init; }

    [JsonIgnore] public string TokenizerDirectory => Tokenizer ?? Clip ?? throw new InvalidOperationException("no tokenizer folder");

    public static ClipTrainConfig Load(string path)
    {
        var cfg = ModelConfigs.Read<ClipTrainConfig>(path);
        var dir = Path.GetDirectoryName(Path.GetFullPath(path))!;
        string Abs(string p)
        {
            p = p.Replace("${RSCAPRET_SHARED}", RsCapRet.Core.RepositoryPaths.SharedDirectory());
            return Path.IsPathRooted(p) ? p : Path.GetFullPath(Path.Combine(dir, p));
        }
        cfg = cfg with
        {
            Datasets = cfg.Datasets.Select(d => d with { Path = Abs(d.Path) }).ToArray(),
            Clip = cfg.Clip is null ? null : Abs(cfg.Clip),
            Tokenizer = cfg.Tokenizer is null ? null : Abs(cfg.Tokenizer),
            VisionBackbone = cfg.VisionBackbone is null ? null : VisionBackbones.Resolve(cfg.VisionBackbone, dir),
            FeatureCache = cfg.FeatureCache is null ? null : Abs(cfg.FeatureCache),
            TextEncoder = cfg.TextEncoder is null ? null : VisionBackbones.Resolve(cfg.TextEncoder, dir),
        };
        cfg.Validate(path);
        return cfg;
    }

    public void Validate(string path)
    {
        void Fail(string m) => throw new FormatException($"{path}: {m}");
        if (Datasets.Length == 0) Fail("no datasets");
        if (new[] { Clip, ClipConfig as object, VisionBackbone }.Count(x => x is not null) != 1)
            Fail("give exactly one of 'clip' (a CLIPModel folder to fine-tune), 'clip_config' (a model to train from scratch) and 'vision_backbone' (a ResNet backbone to adapt, with 'text_config')");
        if (Tokenizer is null && Clip is null && TextEncoder is null)
            Fail("'tokenizer' (a folder with CLIP's vocab.json and merges.txt) is needed with 'clip_config' or 'vision_backbone' and 'text_config'");
        if (TextEncoder is not null && VisionBackbone is null) Fail("'text_encoder' belongs with 'vision_backbone'");
        if (VisionBackbone is not null)
        {
            if ((TextConfig is null) == (TextEncoder is null))
                Fail("'vision_backbone' needs exactly one of 'text_config' (a text tower trained beside it) and 'text_encoder' (a frozen pretrained sentence encoder)");
            TextConfig?.Validate(path);
            if (TextConfig is not null && TextConfig.MaxPositionEmbeddings < ContextLength) Fail($"context_length {ContextLength} exceeds text_config's max_position_embeddings {TextConfig.MaxPositionEmbeddings}");
            if (TrainableBlocks < 1) Fail("trainable_blocks must be at least 1");
            if (FeatureViews is < 1 or > 8) Fail("feature_views must be 1..8 (the dihedral transforms)");
            if (BackboneLearningRate is <= 0) Fail("backbone_learning_rate must be positive");
            if (TextEncoderTrainableLayers < 0) Fail("text_encoder_trainable_layers must be 0 or more");
            if (TextEncoderLearningRate is <= 0) Fail("text_encoder_learning_rate must be positive");
            if (TextEncoder is null && (TextEncoderTrainableLayers > 0 || TextEncoderLearningRate is not null))
                Fail("'text_encoder_trainable_layers' and 'text_encoder_learning_rate' belong with 'text_encoder'");
            if (ProjectionDim < 1) Fail("projection_dim must be positive");
        }
        else if (TextConfig is not null) Fail("'text_config' belongs with 'vision_backbone' (with 'clip_config' the text tower is its text_config)");
        if (BatchSize < 2) Fail("batch_size must be at least 2 (the contrastive loss needs negatives)");
        if (Epochs < 1) Fail("epochs must be at least 1");
        if (LearningRate <= 0) Fail("learning_rate must be positive");
        if (MinCropScale is <= 0 or > 1) Fail("min_crop_scale must be in (0, 1]");
        if (ContextLength < 3) Fail("context_length must be at least 3");
        if (ValDatasets?.FirstOrDefault(v => Datasets.All(d => d.Name != v)) is { } unknown)
            Fail($"val_datasets names '{unknown}', which is not one of the datasets");
        if (ClipConfig is { } c)
        {
            c.Text.Validate(path);
            c.Vision.Validate(path);
            if (c.Text.MaxPositionEmbeddings < ContextLength) Fail($"context_length {ContextLength} exceeds the text tower's max_position_embeddings {c.Text.MaxPositionEmbeddings}");
        }
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Indented);
}
