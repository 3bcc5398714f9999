using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>
/// An RS-CapRet model folder's rscapret.json: where the frozen backbones are, and the heads' shapes. Paths are
/// relative to the folder unless absolute, so a 7B LLM is referenced, never copied or re-saved.
/// </summary>
public sealed record RsCapRetConfig
{
    [JsonPropertyName("name")] public string Name { get; init; } = "rs-capret";
    [JsonPropertyName("version")] public string Version { get; init; } = "1";
    [JsonPropertyName("llm")] public string Llm { get; init; } = "llm";
    [JsonPropertyName("vision")] public string Vision { get; init; } = "vision";
    [JsonPropertyName("tokenizer")] public string Tokenizer { get; init; } = "tokenizer.model";
    [JsonPropertyName("heads")] public string Heads { get; init; } = "heads.safetensors";
    [JsonPropertyName("visual_prefix_tokens")] public int VisualPrefixTokens { get; init; } = 1;
    [JsonPropertyName("shared_dim")] public int SharedDim { get; init; } = 256;
    /// <summary>Id of [RET]. When it equals the LLM's vocabulary size, the row is added (from the heads checkpoint).</summary>
    [JsonPropertyName("ret_token_id")] public int RetTokenId { get; init; }
    [JsonPropertyName("image_size")] public int? ImageSize { get; init; }
    /// <summary>Ground sample distance (m/px) of the model's input images in training, when known.</summary>
    [JsonPropertyName("gsd")] public double? Gsd { get; init; }
    /// <summary>The range of ground sample distances (m/px, as the model sees its input) of the training imagery.</summary>
    [JsonPropertyName("gsd_range")] public double[]? GsdRange { get; init; }
    /// <summary>One line for people on how good the model is (measured figures and where they come from), shown by the demo.</summary>
    [JsonPropertyName("quality")] public string? Quality { get; init; }
    /// <summary>How the model's captions are decoded unless a caller says otherwise: 1 = greedy, more = beam search
    /// with this many beams (chosen on val by the rule in the model card); ingestion, caption and evaluate use it.</summary>
    [JsonPropertyName("beam_width")] public int BeamWidth { get; init; } = 1;
    /// <summary>Whether the decoder was trained on generated dialogues (issue 34); a caption-only model answers questions with caption fragments.</summary>
    [JsonPropertyName("dialogue")] public bool Dialogue { get; init; }
    /// <summary>
    /// The frozen sentence encoder that reads each user turn (issue 34), e.g. "backbone:all-minilm-l6-v2", or null: its
    /// sentence vector, through the heads' turn_reading, is one input position before the turn's tokens.
    /// </summary>
    [JsonPropertyName("turn_encoder")] public string? TurnEncoder { get; init; }
    /// <summary>Whether a retrieval answer was trained to name what it searches for before its [RET] (<see cref="ChatFormat.RetrievalAnswerNaming"/>).</summary>
    [JsonPropertyName("retrieval_answer_names_thing")] public bool RetrievalAnswerNamesThing { get; init; }
    /// <summary>
    /// A chat adapter folder (<see cref="ChatAdapterConfig"/>), or null: the chat then talks with this decoder. Ingestion
    /// and search never use it.
    /// </summary>
    [JsonPropertyName("chat")] public string? Chat { get; init; }

    /// <summary>The training resolution, when both "gsd" and "gsd_range" are recorded.</summary>
    [JsonIgnore]
    public TrainingResolution? TrainingResolution =>
        Gsd is { } g && GsdRange is [var min, var max] ? new TrainingResolution(g, min, max) : null;

    public const string FileName = "rscapret.json";

    public static RsCapRetConfig Load(string modelDirectory)
    {
        var path = Path.Combine(modelDirectory, FileName);
        var cfg = ModelConfigs.Read<RsCapRetConfig>(path);
        if (cfg.VisualPrefixTokens < 1) throw new CheckpointException(path, "visual_prefix_tokens must be at least 1");
        if (cfg.SharedDim < 1) throw new CheckpointException(path, "shared_dim must be positive");
        if (cfg.BeamWidth is < 1 or > 16) throw new CheckpointException(path, $"beam_width must be 1..16, got {cfg.BeamWidth}");
        if (cfg.GsdRange is { } r && (r.Length != 2 || r[0] <= 0 || r[1] < r[0]))
            throw new CheckpointException(path, "gsd_range must be [min, max] with 0 < min <= max (m/px)");
        return cfg;
    }

    /// <summary>A path relative to the model folder, or an imported backbone named "backbone:NAME".</summary>
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Performance", "CA1822", Justification = "Read as the config resolving the paths it names: cfg.Resolve(dir, cfg.Llm).")]
    public string Resolve(string modelDirectory, string relative) => VisionBackbones.Resolve(relative, modelDirectory);

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public void Save(string modelDirectory) =>
        File.WriteAllText(Path.Combine(modelDirectory, FileName), JsonSerializer.Serialize(this, Indented));
}

/// <summary>Ground sample distances (m/px) a model was trained at: its typical one and the range of its imagery.</summary>
public sealed record TrainingResolution(double Gsd, double Min, double Max);

/// <summary>
/// The trainable RS-CapRet heads: visual prefix, image->shared, [RET]->shared, logit scale, and for a model that reads
/// user turns (a turn reading dimension above 0) turn_reading, a sentence vector -> one input position.
/// </summary>
public sealed class RsCapRetHeads : nn.Module
{
    internal readonly Linear visual_prefix, image_to_shared, ret_to_shared;
    internal readonly Linear? turn_reading;
    internal readonly Parameter logit_scale;
    public int PrefixTokens { get; }
    public int LlmHidden { get; }

    public RsCapRetHeads(int visionHidden, int llmHidden, int prefixTokens, int sharedDim, int turnReadingDim = 0) : base(nameof(RsCapRetHeads))
    {
        PrefixTokens = prefixTokens;
        LlmHidden = llmHidden;
        visual_prefix = nn.Linear(visionHidden, prefixTokens * llmHidden);
        image_to_shared = nn.Linear(visionHidden, sharedDim);
        ret_to_shared = nn.Linear(llmHidden, sharedDim);
        if (turnReadingDim > 0)
        {
            turn_reading = nn.Linear(turnReadingDim, llmHidden);
            // Starts at zero: a model initialised from a caption-only one begins where it was.
            using (no_grad()) { turn_reading.weight!.zero_(); turn_reading.bias!.zero_(); }
        }
        logit_scale = new Parameter(tensor(new[] { (float)Math.Log(1 / 0.07) }));
        RegisterComponents();
    }

    public Tensor LogitScale => logit_scale;

    /// <summary>image_to_shared(pooled) before normalisation.</summary>
    public Tensor image_to_shared_forward(Tensor pooled) => image_to_shared.forward(pooled.to_type(image_to_shared.weight!.dtype));
}

/// <summary>One piece of an interleaved prompt: an image (pixel values [3,H,W]) or token ids.</summary>
public abstract record PromptSegment;
public sealed record ImageSegment(Tensor PixelValues) : PromptSegment;
public sealed record TextSegment(IReadOnlyList<int> TokenIds) : PromptSegment;
/// <summary>An image given by the backbone's pooled vector [D] or [1, D] (computed once, e.g. for many prompts).</summary>
public sealed record PooledImageSegment(Tensor Pooled) : PromptSegment;
/// <summary>
/// A user turn's reading: the turn encoder's sentence vector of its words, as one position (models that read turns).
/// <see cref="SentenceVector"/>, when given (<see cref="RsCapRetModel.TurnSentenceVector"/>), spares encoding the words
/// again each time the prompt is embedded, as a chat does at every answer.
/// </summary>
public sealed record TurnReadingSegment(string Text, float[]? SentenceVector = null) : PromptSegment;

public sealed record GenerationOptions
{
    public int MaxNewTokens { get; init; } = 32;
    /// <summary>1 = greedy; more = beam search with this many beams per image.</summary>
    public int BeamWidth { get; init; } = 1;
    /// <summary>Beam scores are divided by length^LengthPenalty when hypotheses finish.</summary>
    public double LengthPenalty { get; init; } = 1.0;
}

/// <summary>A dialogue turn's result: generated ids, and the 256-d vector when the model emitted [RET].</summary>
public sealed record DialogueReply(int[] TokenIds, float[]? RetrievalVector);

/// <summary>
/// RS-CapRet: a frozen vision backbone (CLIP ViT or ResNet) and a Llama decoder joined by small trained heads.
/// Captioning feeds the visual prefix (N tokens) before the text; retrieval projects the LLM's last hidden state at
/// [RET] and the image's pooled output into one shared space where cosine similarity ranks.
/// </summary>
public sealed class RsCapRetModel : nn.Module
{
    internal readonly LlamaForCausalLM llm;
    internal readonly VisionBackbone vision;
    internal readonly RsCapRetHeads heads;
    internal readonly BertSentenceEncoder? turn_encoder;

    public int RetTokenId { get; }
    public int BosTokenId => llm.Config.BosTokenId;
    public int EosTokenId => llm.Config.EosTokenId;
    public int ImageSize => vision.ImageSize;
    public int SharedDim => (int)heads.image_to_shared.weight!.shape[0];
    public LlamaForCausalLM Llm => llm;
    public VisionBackbone Vision => vision;
    public RsCapRetHeads Heads => heads;

    /// <summary>Whether each user turn is read by the turn encoder as one more input position (<see cref="TurnReadingSegment"/>).</summary>
    public bool ReadsTurns => turn_encoder is not null;

    public RsCapRetModel(LlamaForCausalLM llm, VisionBackbone vision, RsCapRetHeads heads, int retTokenId, BertSentenceEncoder? turnEncoder = null)
        : base(nameof(RsCapRetModel))
    {
        this.llm = llm;
        this.vision = vision;
        this.heads = heads;
        turn_encoder = turnEncoder;
        RetTokenId = retTokenId;
        if (retTokenId < 0 || retTokenId >= llm.VocabSize)
            throw new ArgumentOutOfRangeException(nameof(retTokenId), retTokenId, $"[RET] id must be inside the LLM vocabulary (0..{llm.VocabSize - 1}).");
        if ((turnEncoder is null) != (heads.turn_reading is null))
            throw new ArgumentException("A turn encoder and the heads' turn_reading come together.", nameof(turnEncoder));
        if (turnEncoder is not null && heads.turn_reading!.weight!.shape[1] != turnEncoder.HiddenSize)
            throw new ArgumentException($"turn_reading reads {heads.turn_reading.weight.shape[1]}-d vectors; the turn encoder gives {turnEncoder.HiddenSize}-d.", nameof(turnEncoder));
        if (turnEncoder is not null)
            foreach (var p in turnEncoder.parameters()) p.requires_grad = false;
        RegisterComponents();
    }

    /// <summary>The frozen turn encoder's sentence vectors [N, D] of user turns' words (no gradient), on the model's device.</summary>
    public Tensor TurnSentenceVectors(IReadOnlyList<string> texts)
    {
        if (turn_encoder is null) throw new InvalidOperationException("This model does not read user turns (its rscapret.json names no turn_encoder).");
        using var _ = no_grad();
        return turn_encoder.Embed(texts).to(Device);
    }

    /// <summary>The frozen turn encoder's sentence vector of one user turn's words (what a <see cref="TurnReadingSegment"/> reads).</summary>
    public float[] TurnSentenceVector(string text)
    {
        using var vector = TurnSentenceVectors([text]).cpu();
        return vector[0].data<float>().ToArray();
    }

    /// <summary>Turn readings [N, hidden]: sentence vectors through turn_reading, in the decoder's embedding dtype.</summary>
    public Tensor TurnReadings(Tensor sentenceVectors) =>
        heads.turn_reading!.forward(sentenceVectors.to_type(heads.turn_reading.weight!.dtype)).to_type(llm.EmbeddingWeight.dtype);

    /// <summary>
    /// Loads a model folder: rscapret.json, the backbones it names, and heads.safetensors (heads plus, when
    /// [RET] is a new token, its embedding and LM-head rows).
    /// </summary>
    public static RsCapRetModel Load(string modelDirectory, Device? device = null, ScalarType dtype = ScalarType.Float32) =>
        Load(modelDirectory, chat: null, device, dtype);

    /// <summary>
    /// The model the chat talks with: the folder's model with a chat adapter merged into the decoder and its [RET]
    /// projection and turn reading in place of the folder's. The adapter is <paramref name="chatDirectory"/> when given
    /// (one shipped apart from the folder, `--chat-adapter`), else the folder's own (rscapret.json's "chat"); the
    /// folder's model itself when there is none. Image vectors and the visual prefix are the folder's.
    /// </summary>
    public static RsCapRetModel LoadChat(string modelDirectory, Device? device = null, ScalarType dtype = ScalarType.Float32, string? chatDirectory = null)
    {
        var cfg = RsCapRetConfig.Load(modelDirectory);
        chatDirectory ??= cfg.Chat is { } c ? cfg.Resolve(modelDirectory, c) : null;
        if (chatDirectory is null) return Load(modelDirectory, device, dtype);
        var chat = ChatAdapterConfig.Load(chatDirectory);
        chat.RequireFits(chatDirectory, HeadsSha256(modelDirectory));
        return Load(modelDirectory, (chatDirectory, chat), device, dtype);
    }

    private static RsCapRetModel Load(string modelDirectory, (string Directory, ChatAdapterConfig Config)? chat, Device? device, ScalarType dtype)
    {
        var cfg = RsCapRetConfig.Load(modelDirectory);
        var llm = LlamaForCausalLM.FromPretrained(cfg.Resolve(modelDirectory, cfg.Llm));
        var vision = VisionBackbones.FromPretrained(cfg.Resolve(modelDirectory, cfg.Vision));
        var headsPath = cfg.Resolve(modelDirectory, cfg.Heads);
        using var ckpt = Checkpoint.Open(headsPath);
        if (cfg.RetTokenId == llm.VocabSize)
            llm.GrowVocabulary(ckpt.Read("ret_embedding", ScalarType.Float32), ckpt.Read("ret_lm_head", ScalarType.Float32));
        var turnEncoderName = chat is { } c ? c.Config.TurnEncoder : cfg.TurnEncoder;
        var turnEncoder = turnEncoderName is { } t ? BertSentenceEncoder.FromPretrained(cfg.Resolve(chat?.Directory ?? modelDirectory, t)) : null;
        var heads = new RsCapRetHeads(vision.HiddenSize, llm.Config.HiddenSize, cfg.VisualPrefixTokens, cfg.SharedDim, turnEncoder?.HiddenSize ?? 0);
        if (chat is { } adapter)
        {
            using var weights = Checkpoint.Open(Path.Combine(adapter.Directory, adapter.Config.Weights));
            int merged;
            using (NewDisposeScope())   // the A and B matrices read go once merged
                merged = llm.MergeAdapters(name => weights.Contains(name) ? weights.Read(name, ScalarType.Float32) : null, adapter.Config.Alpha);
            if (merged == 0) throw new CheckpointException(weights.Location, "holds no adapter of this decoder's layers");
            // The image side (visual prefix, image projection, scale) is the base's; the [RET] projection and turn reading the chat's.
            var chatHeads = heads.named_parameters().Select(p => p.name).Where(ChatAdapterConfig.IsChatHead).ToHashSet();
            ckpt.LoadInto(heads, skip: chatHeads);
            weights.LoadInto(heads, prefix: "heads.", skip: heads.named_parameters().Select(p => p.name).Except(chatHeads).ToHashSet());
        }
        else ckpt.LoadInto(heads);
        var model = new RsCapRetModel(llm, vision, heads, cfg.RetTokenId, turnEncoder);
        model.eval();
        return (RsCapRetModel)model.to(dtype).to(device ?? CPU);
    }

    /// <summary>Writes heads.safetensors (and the [RET] rows when [RET] was added) and rscapret.json.</summary>
    public void SaveHeads(string modelDirectory, RsCapRetConfig config)
    {
        Directory.CreateDirectory(modelDirectory);
        var tensors = heads.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).ToList();
        if (config.RetTokenId == llm.VocabSize - 1 && config.RetTokenId >= OriginalVocabSize(config, modelDirectory))
        {
            tensors.Add(("ret_embedding", llm.EmbeddingWeight.narrow(0, RetTokenId, 1)));
            tensors.Add(("ret_lm_head", llm.LmHeadWeight.narrow(0, RetTokenId, 1)));
        }
        SafetensorsWriter.Write(config.Resolve(modelDirectory, config.Heads), tensors, new Dictionary<string, string> { ["format"] = "rscapret-heads" });
        config.Save(modelDirectory);
    }

    private static int OriginalVocabSize(RsCapRetConfig config, string modelDirectory) =>
        LlamaConfig.Load(Path.Combine(config.Resolve(modelDirectory, config.Llm), "config.json")).VocabSize;

    /// <summary>SHA-256 of the heads file: the identity of a trained model in the catalogue.</summary>
    public static string HeadsSha256(string modelDirectory)
    {
        var cfg = RsCapRetConfig.Load(modelDirectory);
        using var fs = File.OpenRead(cfg.Resolve(modelDirectory, cfg.Heads));
        return Convert.ToHexStringLower(SHA256.HashData(fs));
    }

    public Device Device => heads.visual_prefix.weight!.device;

    /// <summary>The vision backbone's pooled vector (CLIP: post-layernorm CLS; ResNet: global average) for pixel values [B,3,H,W].</summary>
    public Tensor PooledImage(Tensor pixels) => vision.Pooled(pixels.to(Device));

    /// <summary>How images become this model's pixel values (the backbone's own preprocessing), at <paramref name="size"/>.</summary>
    public ImagePreprocessor Preprocessor(int? size = null) => vision.Preprocessor(size);

    /// <summary>Visual prefix embeddings [B, N, hidden] in the LLM's input space.</summary>
    public Tensor VisualPrefix(Tensor pooled) =>
        heads.visual_prefix.forward(pooled.to_type(heads.visual_prefix.weight!.dtype)).view(pooled.shape[0], heads.PrefixTokens, heads.LlmHidden).to_type(llm.EmbeddingWeight.dtype);

    /// <summary>Logits of [visual prefix][caption tokens] — what the captioning loss is computed on.</summary>
    public Tensor CaptionLogits(Tensor pixels, Tensor captionIds, Tensor? captionMask = null)
    {
        using var scope = NewDisposeScope();
        return CaptionLogitsFromPooled(PooledImage(pixels), captionIds, captionMask).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="CaptionLogits"/> from the backbone's pooled vectors (e.g. cached ones of a frozen backbone).</summary>
    public Tensor CaptionLogitsFromPooled(Tensor pooled, Tensor captionIds, Tensor? captionMask = null)
    {
        using var scope = NewDisposeScope();
        var prefix = VisualPrefix(pooled.to(Device));
        var embeds = cat([prefix, llm.EmbedTokens(captionIds.to(Device))], 1);
        Tensor? mask = captionMask is null ? null : cat([ones(prefix.shape[0], prefix.shape[1], ScalarType.Int64, Device), captionMask.to(Device)], 1);
        using var output = llm.ForwardEmbeds(embeds, mask);
        return output.Logits.alias().MoveToOuterDisposeScope();
    }

    /// <summary>
    /// L2-normalised shared-space vectors of texts: token ids [B,T] containing [RET] (the last [RET] of each row is
    /// used), text-only pass. <paramref name="mask"/> marks real tokens (right padding).
    /// </summary>
    public Tensor RetEmbedding(Tensor ids, Tensor? mask = null)
    {
        using var scope = NewDisposeScope();
        ids = ids.to(Device);
        // Only the [RET] row's hidden state is needed: no logits, and the last layer runs for that row alone.
        var h = llm.HiddenAt(ids, RetPositions(ids), mask?.to(Device));
        return F.normalize(heads.ret_to_shared.forward(h.to_type(heads.ret_to_shared.weight!.dtype)).to_type(ScalarType.Float32), dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>L2-normalised shared-space vectors of LLM hidden states at [RET] ([B, hidden] → [B, SharedDim]).</summary>
    public Tensor RetVectorFromHidden(Tensor hidden) =>
        F.normalize(heads.ret_to_shared.forward(hidden.to_type(heads.ret_to_shared.weight!.dtype)).to_type(ScalarType.Float32), dim: -1);

    private Tensor RetPositions(Tensor ids)
    {
        var isRet = ids.eq(RetTokenId);
        if (!isRet.any(1).all().item<bool>()) throw new ArgumentException("Every retrieval sequence must contain the [RET] token.");
        // Index of the last [RET]: argmax over position * isRet.
        var pos = arange(ids.shape[1], device: ids.device).unsqueeze(0) * isRet.to_type(ScalarType.Int64);
        return pos.argmax(1);
    }

    /// <summary>L2-normalised shared-space vectors of images (pixel values [B,3,H,W]).</summary>
    public Tensor ImageEmbedding(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return ImageEmbeddingFromPooled(PooledImage(pixels)).MoveToOuterDisposeScope();
    }

    /// <summary><see cref="ImageEmbedding"/> from the backbone's pooled vectors.</summary>
    public Tensor ImageEmbeddingFromPooled(Tensor pooled)
    {
        using var scope = NewDisposeScope();
        pooled = pooled.to(Device);
        return F.normalize(heads.image_to_shared.forward(pooled.to_type(heads.image_to_shared.weight!.dtype)).to_type(ScalarType.Float32), dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Dihedral view <paramref name="view"/> (0..7) of pixel values [B,3,H,W]: views 0-3 are 0-3 quarter turns, 4-7 the
    /// same after a left-right mirror. Overhead imagery has no up: each view is a picture of the same ground.
    /// </summary>
    public static Tensor DihedralView(Tensor pixels, int view)
    {
        if (view is < 0 or > 7) throw new ArgumentOutOfRangeException(nameof(view), view, "dihedral views are 0..7");
        var x = view >= 4 ? pixels.flip(3) : pixels.alias();
        return view % 4 == 0 ? x : x.rot90(view % 4, (2, 3));
    }

    /// <summary>
    /// Test-time augmentation (issue 31): the mean of the L2-normalised image vectors of the first
    /// <paramref name="views"/> dihedral views (1 = <see cref="ImageEmbedding"/>), normalised again. One backbone pass
    /// per view; <paramref name="pooled"/>, the identity view's pooled vectors when the caller has them (for captions),
    /// saves that view's pass.
    /// </summary>
    public Tensor ImageEmbeddingViews(Tensor pixels, int views, Tensor? pooled = null)
    {
        if (views is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(views), views, "views must be 1..8 (the dihedral views)");
        using var scope = NewDisposeScope();
        var sum = pooled is null ? ImageEmbedding(pixels) : ImageEmbeddingFromPooled(pooled);
        for (var v = 1; v < views; v++) sum = sum + ImageEmbedding(DihedralView(pixels, v));
        return F.normalize(sum / views, dim: -1).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Cell vectors: <c>image_to_shared</c> applied at every position of the backbone's last feature map (ResNet: the
    /// 7 × 7 map at 224 px) — [B, h, w, SharedDim], before normalisation — beside the tile's own vector before
    /// normalisation, [B, SharedDim]. <c>image_to_shared</c> is linear, so the mean of the cells is the tile's vector
    /// (up to float rounding). Backbones without a position map throw <see cref="CellVectorsNotAvailableException"/>.
    /// </summary>
    public (Tensor Tile, Tensor Cells) CellEmbeddings(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var features = vision.PositionFeatures(pixels.to(Device));
        var pooled = features.mean([2, 3]);
        var w = heads.image_to_shared.weight!;
        var tile = heads.image_to_shared.forward(pooled.to_type(w.dtype)).to_type(ScalarType.Float32);
        var cells = heads.image_to_shared.forward(features.permute(0, 2, 3, 1).to_type(w.dtype)).to_type(ScalarType.Float32);
        return (tile.MoveToOuterDisposeScope(), cells.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The backbone's pooled vectors [B, C] (the mean of its position features, what captions and image vectors are
    /// made from) and the cell vectors before normalisation [B, h, w, SharedDim], from one backbone pass.
    /// </summary>
    public (Tensor Pooled, Tensor Cells) PooledAndCellEmbeddings(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        var features = vision.PositionFeatures(pixels.to(Device));
        var pooled = features.mean([2, 3]);
        var w = heads.image_to_shared.weight!;
        var cells = heads.image_to_shared.forward(features.permute(0, 2, 3, 1).to_type(w.dtype)).to_type(ScalarType.Float32);
        return (pooled.MoveToOuterDisposeScope(), cells.MoveToOuterDisposeScope());
    }

    /// <summary>exp(logit_scale) * image @ text^T for normalised vectors.</summary>
    public Tensor LogitsPerImage(Tensor imageEmbeds, Tensor retEmbeds) =>
        heads.logit_scale.to_type(imageEmbeds.dtype).exp() * matmul(imageEmbeds, retEmbeds.t());

    // ------------------------------------------------------------------------------------------ generation

    /// <summary>
    /// Captions for a batch of images: the visual prefix, then BOS, then tokens until EOS, [RET] or the limit.
    /// [RET] is never part of a caption: training puts it right after the caption, so the model choosing it means
    /// the caption is complete (FROMAGe's convention). Returns generated ids per image (without BOS/EOS/[RET]).
    /// </summary>
    public IReadOnlyList<int[]> GenerateCaptions(Tensor pixels, GenerationOptions? options = null)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return GenerateCaptionsFromPooled(PooledImage(pixels), options);
    }

    /// <summary><see cref="GenerateCaptions"/> from the backbone's pooled vectors (ingestion computes them once for vectors and captions).</summary>
    public IReadOnlyList<int[]> GenerateCaptionsFromPooled(Tensor pooled, GenerationOptions? options = null)
    {
        options ??= new GenerationOptions();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var b = pooled.shape[0];
        var prefix = VisualPrefix(pooled.to(Device));
        var bos = llm.EmbedTokens(full(b, 1, Scalars.Of((long)BosTokenId), ScalarType.Int64, Device));
        var start = cat([prefix, bos], 1);
        if (options.BeamWidth <= 1) return Greedy(start, options.MaxNewTokens, suppressRet: true).Select(r => r.Ids).ToList();
        return Beam(start, options);
    }

    /// <summary>
    /// Continues an interleaved prompt (images and text, e.g. a dialogue) greedily. Generation stops at EOS or when
    /// the model emits [RET]; then the reply carries the [RET] vector for the caller to retrieve with.
    /// </summary>
    public DialogueReply Continue(IReadOnlyList<PromptSegment> prompt, int maxNewTokens = 64)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var embeds = EmbedPrompt(prompt);
        var (ids, retHidden) = Greedy(embeds, maxNewTokens, suppressRet: false)[0];
        float[]? vector = null;
        if (retHidden is not null)
            vector = RetVectorFromHidden(retHidden).cpu().data<float>().ToArray();
        return new DialogueReply(ids, vector);
    }

    /// <summary>Embeds an interleaved prompt into one sequence [1, T, hidden] (images become their visual prefix).</summary>
    public Tensor EmbedPrompt(IReadOnlyList<PromptSegment> prompt)
    {
        if (prompt.Count == 0) throw new ArgumentException("The prompt is empty.", nameof(prompt));
        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        foreach (var seg in prompt)
            parts.Add(seg switch
            {
                ImageSegment img => VisualPrefix(PooledImage(img.PixelValues.dim() == 3 ? img.PixelValues.unsqueeze(0) : img.PixelValues)),
                PooledImageSegment p => VisualPrefix((p.Pooled.dim() == 1 ? p.Pooled.unsqueeze(0) : p.Pooled).to(Device)),
                TextSegment txt when txt.TokenIds.Count > 0 => llm.EmbedTokens(tensor(txt.TokenIds.Select(i => (long)i).ToArray(), device: Device).unsqueeze(0)),
                TextSegment => throw new ArgumentException("A text segment has no tokens."),
                TurnReadingSegment { SentenceVector: { } v } => TurnReadings(tensor(v, device: Device).unsqueeze(0)).unsqueeze(0),
                TurnReadingSegment turn => TurnReadings(TurnSentenceVectors([turn.Text])).unsqueeze(0),
                _ => throw new ArgumentException($"Unknown prompt segment {seg.GetType().Name}."),
            });
        return cat(parts, 1).MoveToOuterDisposeScope();
    }

    private List<(int[] Ids, Tensor? RetHidden)> Greedy(Tensor startEmbeds, int maxNewTokens, bool suppressRet)
    {
        var b = (int)startEmbeds.shape[0];
        var generated = Enumerable.Range(0, b).Select(_ => new List<int>()).ToArray();
        var finished = new bool[b];
        Tensor? retHidden = null;
        using var cache = new KvCache(llm.Config.NumHiddenLayers);
        var input = startEmbeds;
        for (var step = 0; step < maxNewTokens; step++)
        {
            using var stepScope = NewDisposeScope();
            using var output = llm.ForwardEmbeds(input, cache: cache);
            var logits = output.Logits.select(1, -1).to_type(ScalarType.Float32);
            var next = logits.argmax(-1).cpu().data<long>().ToArray();
            for (var i = 0; i < b; i++)
            {
                if (finished[i]) continue;
                if (next[i] == EosTokenId || (suppressRet && next[i] == RetTokenId)) { finished[i] = true; continue; }
                generated[i].Add((int)next[i]);
                if (!suppressRet && next[i] == RetTokenId) finished[i] = true;
            }
            if (finished.All(f => f)) break;
            var nextIds = tensor(next.Select((t, i) => finished[i] ? (long)EosTokenId : t).ToArray(), device: Device).unsqueeze(1);
            input = llm.EmbedTokens(nextIds);
            input.MoveToOuterDisposeScope();
        }
        // For dialogue: the [RET] representation is the hidden state when [RET] is the input token.
        if (!suppressRet && b == 1 && generated[0].Count > 0 && generated[0][^1] == RetTokenId)
        {
            using var output = llm.ForwardEmbeds(llm.EmbedTokens(tensor(new long[] { RetTokenId }, device: Device).unsqueeze(0)), cache: cache);
            retHidden = output.LastHiddenState.select(1, -1).alias();
        }
        return generated.Select((g, i) => (g.ToArray(), i == 0 ? retHidden : null)).ToList();
    }

    /// <summary>
    /// Beam search for a batch of images at once: the live beams of every image are the rows of one forward pass per
    /// step (one image's beams after another), so a batch costs about as many passes as one image. Each image keeps its
    /// own beams, finished hypotheses and stopping rule; an image that stops drops its rows from the cache.
    /// </summary>
    private List<int[]> Beam(Tensor startEmbeds, GenerationOptions options)
    {
        var k = options.BeamWidth;
        var b = (int)startEmbeds.shape[0];
        var beams = Enumerable.Range(0, b).Select(_ => new List<(List<int> Ids, double Score)> { (new List<int>(), 0.0) }).ToArray();
        var done = Enumerable.Range(0, b).Select(_ => new List<(int[] Ids, double Score)>()).ToArray();
        double Normalised(double score, int length) => score / Math.Pow(Math.Max(1, length), options.LengthPenalty);
        using var cache = new KvCache(llm.Config.NumHiddenLayers);
        var input = startEmbeds;
        for (var step = 0; step < options.MaxNewTokens && beams.Any(bm => bm.Count > 0); step++)
        {
            using var stepScope = NewDisposeScope();
            using var output = llm.ForwardEmbeds(input, cache: cache);
            var logp = F.log_softmax(output.Logits.select(1, -1).to_type(ScalarType.Float32), -1);
            var (topv, topi) = logp.topk(k, -1);
            var values = topv.cpu().data<float>().ToArray();
            var indices = topi.cpu().data<long>().ToArray();
            var rows = new List<long>();
            var tokens = new List<long>();
            var offset = 0;   // this image's first row in the step's batch
            for (var img = 0; img < b; img++)
            {
                var live = beams[img];
                if (live.Count == 0) continue;
                var candidates = new List<(int Beam, int Token, double Score)>();
                for (var bIdx = 0; bIdx < live.Count; bIdx++)
                    for (var j = 0; j < k; j++)
                        candidates.Add((bIdx, (int)indices[(offset + bIdx) * k + j], live[bIdx].Score + values[(offset + bIdx) * k + j]));
                var next = new List<(List<int> Ids, double Score)>();
                var nextRows = new List<long>();
                foreach (var c in candidates.OrderByDescending(c => c.Score))
                {
                    if (c.Token == EosTokenId || c.Token == RetTokenId) // [RET] ends a caption and is not part of it
                    {
                        var ids = live[c.Beam].Ids.ToArray();
                        done[img].Add((ids, Normalised(c.Score, ids.Length + 1)));
                        continue;
                    }
                    next.Add((new List<int>(live[c.Beam].Ids) { c.Token }, c.Score));
                    nextRows.Add(offset + c.Beam);
                    if (next.Count == k) break;
                }
                offset += live.Count;
                // Stop when the best finished hypothesis beats every live one even after normalisation.
                if (done[img].Count >= k && next.Count > 0 && done[img].Max(d => d.Score) >= next.Max(n => Normalised(n.Score, n.Ids.Count + 1)))
                    next.Clear();
                beams[img] = next;
                if (next.Count == 0) continue;
                rows.AddRange(nextRows);
                tokens.AddRange(next.Select(n => (long)n.Ids[^1]));
            }
            if (rows.Count == 0) break;
            cache.Select(tensor(rows.ToArray(), device: Device));
            input = llm.EmbedTokens(tensor(tokens.ToArray(), device: Device).unsqueeze(1));
            input.MoveToOuterDisposeScope();
        }
        var results = new List<int[]>(b);
        for (var img = 0; img < b; img++)
        {
            foreach (var (ids, score) in beams[img]) done[img].Add((ids.ToArray(), Normalised(score, ids.Count)));
            results.Add(done[img].OrderByDescending(d => d.Score).First().Ids);
        }
        return results;
    }
}
