using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model;

namespace RsCapRet.Training;

/// <summary>A dataset entry of a training config: a name and a Karpathy-style folder.</summary>
public sealed record DatasetRef([property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("path")] string Path);

/// <summary>
/// An RS-CapRet training run (JSON). "heads" mode is the paper's recipe (frozen backbones loaded from
/// <see cref="Llm"/>/<see cref="Vision"/>; only the heads and the [RET] rows train); "full" trains every parameter
/// of small backbones built from <see cref="LlmConfig"/>/<see cref="VisionConfig"/>; "frozen-vision" loads a
/// pretrained vision backbone (<see cref="Vision"/>, a folder or "backbone:NAME"), keeps it frozen, and trains a
/// small decoder built from <see cref="LlmConfig"/> and the heads on its pooled vectors, computed once per image
/// and dihedral view (<see cref="FeatureViews"/>) and cached (the embedded default model).
/// </summary>
public sealed record TrainConfig
{
    [JsonPropertyName("name")] public string Name { get; init; } = "rs-capret";
    [JsonPropertyName("version")] public string Version { get; init; } = "1";
    [JsonPropertyName("mode")] public string Mode { get; init; } = "heads";
    [JsonPropertyName("datasets")] public DatasetRef[] Datasets { get; init; } = [];
    [JsonPropertyName("train_split")] public string TrainSplit { get; init; } = "train";
    [JsonPropertyName("val_split")] public string ValSplit { get; init; } = "val";
    /// <summary>Names of the datasets whose val split selects the model (default: all of them).</summary>
    [JsonPropertyName("val_datasets")] public string[]? ValDatasets { get; init; }
    [JsonPropertyName("tokenizer")] public string Tokenizer { get; init; } = "";
    [JsonPropertyName("llm")] public string? Llm { get; init; }
    [JsonPropertyName("vision")] public string? Vision { get; init; }
    [JsonPropertyName("llm_config")] public LlamaConfig? LlmConfig { get; init; }
    [JsonPropertyName("vision_config")] public ClipTowerConfig? VisionConfig { get; init; }
    [JsonPropertyName("visual_prefix_tokens")] public int VisualPrefixTokens { get; init; } = 1;
    [JsonPropertyName("shared_dim")] public int SharedDim { get; init; } = 256;
    [JsonPropertyName("batch_size")] public int BatchSize { get; init; } = 64;
    [JsonPropertyName("learning_rate")] public double LearningRate { get; init; } = 3e-4;
    [JsonPropertyName("warmup_steps")] public int WarmupSteps { get; init; } = 100;
    /// <summary>"constant" after warm-up (the paper), or "cosine" down to min_lr_ratio × lr at the last epoch.</summary>
    [JsonPropertyName("lr_schedule")] public string LrSchedule { get; init; } = "constant";
    [JsonPropertyName("min_lr_ratio")] public double MinLrRatio { get; init; } = 0.1;
    [JsonPropertyName("epochs")] public int Epochs { get; init; } = 10;
    [JsonPropertyName("caption_loss_weight")] public double CaptionLossWeight { get; init; } = 1;
    /// <summary>Treat identical captions in a batch as positives of each other's images instead of negatives.</summary>
    [JsonPropertyName("duplicate_captions_positive")] public bool DuplicateCaptionsArePositives { get; init; }
    /// <summary>
    /// Treat images linked by shared reference captions (connected components over the training split: image A
    /// shares a caption with B, B with C) as positives of each other. On UCM the groups are the scene classes,
    /// recovered from the captions alone; it subsumes duplicate_captions_positive.
    /// </summary>
    [JsonPropertyName("caption_groups_positive")] public bool CaptionGroupsArePositives { get; init; }
    [JsonPropertyName("contrastive_loss_weight")] public double ContrastiveLossWeight { get; init; } = 1;
    /// <summary>
    /// Class-aware hard negatives (issue 31): batches made of runs of this many images of one scene class (from the
    /// file names), so that a batch's negatives include images of the caption's own class; 0 or 1: plain shuffles.
    /// </summary>
    [JsonPropertyName("class_batch_group")] public int ClassBatchGroup { get; init; }
    [JsonPropertyName("concat_probability")] public double ConcatProbability { get; init; } = 0.5;
    [JsonPropertyName("max_caption_tokens")] public int MaxCaptionTokens { get; init; } = 40;
    [JsonPropertyName("seed")] public int Seed { get; init; } = 42;
    [JsonPropertyName("checkpoint_every")] public int CheckpointEvery { get; init; } = 200;
    [JsonPropertyName("early_stopping_patience")] public int EarlyStoppingPatience { get; init; } = 5;
    [JsonPropertyName("augment")] public bool Augment { get; init; } = true;
    /// <summary>With augment: random square crops of at least this area fraction (1 = flips and rotations only).</summary>
    [JsonPropertyName("min_crop_scale")] public double MinCropScale { get; init; } = 1.0;
    [JsonPropertyName("device")] public string Device { get; init; } = "auto";
    /// <summary>
    /// "bf16": the frozen backbones of heads mode run in bfloat16 (the paper's setting; the heads and their Adam
    /// state stay float32); "fp32"; "auto": bf16 on CUDA, fp32 on the CPU (where bf16 matmuls are slow).
    /// </summary>
    [JsonPropertyName("precision")] public string Precision { get; init; } = "auto";
    [JsonPropertyName("threads")] public int? Threads { get; init; }
    /// <summary>Ground sample distance (m/px) of the model's input images, recorded in the exported rscapret.json.</summary>
    [JsonPropertyName("gsd")] public double? Gsd { get; init; }
    /// <summary>[min, max] ground sample distance (m/px, as the model sees its input) of the training imagery, exported with the model.</summary>
    [JsonPropertyName("gsd_range")] public double[]? GsdRange { get; init; }
    /// <summary>Stop after this many optimiser steps (smoke tests, time-boxed runs); a checkpoint is written there.</summary>
    [JsonPropertyName("max_steps")] public int? MaxSteps { get; init; }
    /// <summary>Use only the first N images of the train / val split (quick runs).</summary>
    [JsonPropertyName("max_train_images")] public int? MaxTrainImages { get; init; }
    [JsonPropertyName("max_val_images")] public int? MaxValImages { get; init; }
    /// <summary>frozen-vision: dihedral views (1..8: quarter turns, then mirrored) whose pooled vectors are cached per train image; each step draws one.</summary>
    [JsonPropertyName("feature_views")] public int FeatureViews { get; init; } = 1;
    /// <summary>frozen-vision: folder of the pooled-vector cache (relative to the config file); default: "features" in the run folder.</summary>
    [JsonPropertyName("feature_cache")] public string? FeatureCache { get; init; }
    /// <summary>frozen-vision: start from this model folder's decoder and heads (relative to the config file) instead of new weights.</summary>
    [JsonPropertyName("init_from")] public string? InitFrom { get; init; }
    /// <summary>Share of training sequences that are generated dialogues (<see cref="DialogueGenerator"/>) instead of captions (issue 34).</summary>
    [JsonPropertyName("dialogue_probability")] public double DialogueProbability { get; init; }
    /// <summary>Weight of the InfoNCE loss on the [RET] vectors of dialogue answers (toward the images they ask for).</summary>
    [JsonPropertyName("dialogue_retrieval_loss_weight")] public double DialogueRetrievalLossWeight { get; init; } = 1;
    /// <summary>Up to this many follow-up questions (uniformly 0..N) continue a generated dialogue, each answer trained (issue 34).</summary>
    [JsonPropertyName("dialogue_follow_ups")] public int DialogueFollowUps { get; init; }
    /// <summary>
    /// Whether a follow-up may also ask to retrieve something new (a quarter of them), answered with [RET] toward it,
    /// its images joining after: without it no [RET] request ever follows an exchange, and the chat reads one as
    /// "more like this" (issue 34, dialogue-v24).
    /// </summary>
    [JsonPropertyName("dialogue_follow_up_requests")] public bool DialogueFollowUpRequests { get; init; }
    /// <summary>
    /// Weight of a cross-entropy over the dialogue answers' tokens alone, averaged over them (0: none): a one-token
    /// answer ("yes", "the first one") otherwise weighs one token among a batch's thousands of caption tokens.
    /// </summary>
    [JsonPropertyName("dialogue_answer_loss_weight")] public double DialogueAnswerLossWeight { get; init; }
    /// <summary>
    /// Weight of 1 − cosine between a dialogue's [RET] vector answering a request for a named thing and the search's
    /// own vector of that thing's words (BOS words [RET], no gradient): the dialogue's query should say what search would.
    /// </summary>
    [JsonPropertyName("dialogue_ret_distill_weight")] public double DialogueRetDistillWeight { get; init; }
    /// <summary>Whether generated dialogues also use the extended phrasings (about 50 more; the held-out ones stay held out).</summary>
    [JsonPropertyName("dialogue_extended_phrasings")] public bool DialogueExtendedPhrasings { get; init; }
    /// <summary>Whether generated dialogues also use the question-form phrasings ("could you show me THING?", "does it have THING?").</summary>
    [JsonPropertyName("dialogue_question_phrasings")] public bool DialogueQuestionPhrasings { get; init; }
    /// <summary>
    /// A frozen sentence encoder ("backbone:all-minilm-l6-v2") whose vector of each user turn, through a trained linear
    /// map, is one input position before the turn's tokens, so unseen phrasings land near seen ones; null for none.
    /// </summary>
    [JsonPropertyName("dialogue_turn_encoder")] public string? DialogueTurnEncoder { get; init; }

    /// <summary>
    /// With a turn encoder: the share of training user turns shown without their words (BOS "q:" EOS after the
    /// reading), so the decoder has to answer from the reading, which is all that carries to phrasings it never saw.
    /// </summary>
    [JsonPropertyName("dialogue_turn_word_dropout")] public double DialogueTurnWordDropout { get; init; }

    /// <summary>The learning rate of the turn reading (a new map starting at zero), when it should differ from learning_rate; the schedule scales both.</summary>
    [JsonPropertyName("dialogue_turn_reading_learning_rate")] public double? DialogueTurnReadingLearningRate { get; init; }

    /// <summary>
    /// Whether a retrieval answer names what it searches for before its [RET] ("here they are: storage tanks"): the
    /// [RET] then follows the thing's words, as the search's own query does. Recorded in the model folder.
    /// </summary>
    [JsonPropertyName("dialogue_retrieval_answer_names_thing")] public bool DialogueRetrievalAnswerNamesThing { get; init; }

    /// <summary>
    /// With init_from: train a chat adapter of this rank instead of the decoder — low-rank updates of its projections,
    /// its own [RET] projection and turn reading, everything else frozen — so the exported folder is init_from's model
    /// (search and captions unchanged, same catalogue identity) with a chat/ adapter; distillation targets come from
    /// init_from's frozen decoder. Null: the decoder itself trains.
    /// </summary>
    [JsonPropertyName("dialogue_chat_adapter_rank")] public int? DialogueChatAdapterRank { get; init; }

    /// <summary>Which epoch is exported as "best": "val-mr" (the best mean val text→image mR) or "last".</summary>
    [JsonPropertyName("selection")] public string Selection { get; init; } = "val-mr";

    public static TrainConfig Load(string path)
    {
        var cfg = ModelConfigs.Read<TrainConfig>(path);
        var dir = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path))!;
        string Abs(string p) => System.IO.Path.IsPathRooted(p) ? p : System.IO.Path.GetFullPath(System.IO.Path.Combine(dir, Expand(p)));
        // A backbone named "backbone:NAME" stays a name; anything else is a path.
        string? NamedOrAbs(string? p) => p is null || p.StartsWith(VisionBackbones.NamedPrefix, StringComparison.Ordinal) ? p : Abs(p);
        cfg = cfg with
        {
            Datasets = cfg.Datasets.Select(d => d with { Path = Abs(d.Path) }).ToArray(),
            Tokenizer = Abs(cfg.Tokenizer),
            Llm = cfg.Llm is null ? null : Abs(cfg.Llm),
            Vision = NamedOrAbs(cfg.Vision),
            FeatureCache = cfg.FeatureCache is null ? null : Abs(cfg.FeatureCache),
            InitFrom = cfg.InitFrom is null ? null : Abs(cfg.InitFrom),
            DialogueTurnEncoder = NamedOrAbs(cfg.DialogueTurnEncoder),
        };
        cfg.Validate(path);
        return cfg;
    }

    /// <summary>${RSCAPRET_SHARED} in paths, so configs can name the shared data folder.</summary>
    private static string Expand(string p) => p.Replace("${RSCAPRET_SHARED}", RsCapRet.Core.RepositoryPaths.SharedDirectory());

    public void Validate(string path)
    {
        void Fail(string m) => throw new FormatException($"{path}: {m}");
        if (Mode is not ("heads" or "full" or "frozen-vision")) Fail($"mode must be 'heads', 'full' or 'frozen-vision', got '{Mode}'");
        if (Mode == "frozen-vision" && (LlmConfig is null || Vision is null)) Fail("frozen-vision mode needs 'llm_config' and a 'vision' backbone (a folder or \"backbone:NAME\")");
        if (FeatureViews is < 1 or > 8) Fail("feature_views must be 1..8 (the dihedral views)");
        if (Datasets.Length == 0) Fail("no datasets");
        if (Mode == "heads" && (Llm is null || Vision is null)) Fail("heads mode needs 'llm' and 'vision' checkpoint folders");
        if (Mode == "full" && (LlmConfig is null || VisionConfig is null)) Fail("full mode needs 'llm_config' and 'vision_config'");
        if (BatchSize < 2) Fail("batch_size must be at least 2 (the contrastive loss needs negatives)");
        if (Epochs < 1) Fail("epochs must be at least 1");
        if (LearningRate <= 0) Fail("learning_rate must be positive");
        if (ConcatProbability is < 0 or > 1) Fail("concat_probability must be 0..1");
        if (Precision is not ("auto" or "fp32" or "bf16")) Fail($"precision must be 'auto', 'fp32' or 'bf16', got '{Precision}'");
        if (Precision == "bf16" && Mode != "heads") Fail("precision 'bf16' is for heads mode (frozen backbones); full training runs in float32");
        if (LrSchedule is not ("constant" or "cosine")) Fail($"lr_schedule must be 'constant' or 'cosine', got '{LrSchedule}'");
        if (MinLrRatio is < 0 or > 1) Fail("min_lr_ratio must be 0..1");
        if (MinCropScale is <= 0 or > 1) Fail("min_crop_scale must be in (0, 1]");
        if (DialogueProbability is < 0 or > 1) Fail("dialogue_probability must be 0..1");
        if (DialogueRetrievalLossWeight < 0) Fail("dialogue_retrieval_loss_weight must be non-negative");
        if (DialogueFollowUps is < 0 or > 4) Fail("dialogue_follow_ups must be 0..4");
        if (DialogueFollowUpRequests && DialogueFollowUps == 0) Fail("dialogue_follow_up_requests are follow-ups: they need dialogue_follow_ups above 0");
        if (DialogueAnswerLossWeight < 0) Fail("dialogue_answer_loss_weight must be non-negative");
        if (DialogueRetDistillWeight < 0) Fail("dialogue_ret_distill_weight must be non-negative");
        if (DialogueTurnEncoder is not null && DialogueProbability == 0) Fail("dialogue_turn_encoder reads user turns: it needs dialogue_probability above 0");
        if (DialogueTurnEncoder is not null && Mode != "frozen-vision") Fail("dialogue_turn_encoder is for mode frozen-vision");
        if (DialogueTurnWordDropout is < 0 or >= 1) Fail("dialogue_turn_word_dropout must be 0 or more and below 1");
        if (DialogueTurnWordDropout > 0 && DialogueTurnEncoder is null) Fail("dialogue_turn_word_dropout leaves the reading alone: it needs dialogue_turn_encoder");
        if (DialogueTurnReadingLearningRate is <= 0) Fail("dialogue_turn_reading_learning_rate must be positive");
        if (DialogueTurnReadingLearningRate is not null && DialogueTurnEncoder is null) Fail("dialogue_turn_reading_learning_rate is the turn reading's: it needs dialogue_turn_encoder");
        if (DialogueRetrievalAnswerNamesThing && DialogueProbability == 0) Fail("dialogue_retrieval_answer_names_thing shapes dialogue answers: it needs dialogue_probability above 0");
        if (DialogueChatAdapterRank is { } rank)
        {
            if (rank is < 1 or > 256) Fail("dialogue_chat_adapter_rank must be 1..256");
            if (InitFrom is null) Fail("dialogue_chat_adapter_rank adapts a trained model's decoder: it needs init_from");
            if (DialogueProbability == 0) Fail("dialogue_chat_adapter_rank trains the chat: it needs dialogue_probability above 0");
        }
        if (ClassBatchGroup < 0 || ClassBatchGroup > BatchSize / 2) Fail($"class_batch_group must be 0..{BatchSize / 2} (half of batch_size)");
        if (Selection is not ("val-mr" or "last")) Fail($"selection must be 'val-mr' or 'last', got '{Selection}'");
        if (InitFrom is not null && Mode != "frozen-vision") Fail("init_from is for frozen-vision mode");
        if (InitFrom is not null && !File.Exists(System.IO.Path.Combine(InitFrom, RsCapRetConfig.FileName)))
            Fail($"init_from: {InitFrom} is not a model folder (no {RsCapRetConfig.FileName})");
        if (ValDatasets?.FirstOrDefault(v => Datasets.All(d => d.Name != v)) is { } unknown)
            Fail($"val_datasets names '{unknown}', which is not one of the datasets ({string.Join(", ", Datasets.Select(d => d.Name))})");
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public string ToJson() => JsonSerializer.Serialize(this, Indented);
}
