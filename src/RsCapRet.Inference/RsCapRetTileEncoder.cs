using System.Runtime.ExceptionServices;
using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Model.Checkpoints;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Storage;
using static TorchSharp.torch;

namespace RsCapRet.Inference;

/// <summary>
/// A loaded RS-CapRet model folder as the pipeline uses it: tiles -> captions + image vectors (ingest), and
/// text -> [RET] vector (search). Not thread-safe: one per worker thread (torch parallelises inside a call).
/// </summary>
public sealed class RsCapRetTileEncoder : ITileEncoder, IDisposable
{
    public RsCapRetModel Model { get; }
    public LlamaTextTokenizer Tokenizer { get; }
    public ImagePreprocessor Preprocessor { get; }
    public ModelIdentity Identity { get; }
    public int InputSize => Preprocessor.Size;
    public TrainingResolution? TrainingResolution { get; private init; }
    public string? Directory { get; private init; }
    /// <summary>Whether the model folder says its decoder was trained on dialogues (rscapret.json's "dialogue").</summary>
    public bool DialogueTrained { get; private init; }
    /// <summary>Whether its retrieval answers name what they search for (rscapret.json's "retrieval_answer_names_thing").</summary>
    public bool RetrievalAnswerNamesThing { get; private init; }
    /// <summary>
    /// The version of the chat adapter the chat talks with (one given apart from the folder, else rscapret.json's
    /// "chat"), or null when the chat talks with <see cref="Model"/>.
    /// </summary>
    public string? ChatAdapterVersion { get; private init; }
    /// <summary>The chat adapter's folder, or null.</summary>
    public string? ChatAdapterDirectory { get; private init; }
    /// <summary>What the chat adapter's evaluation measured (its chat.json's "quality"), or null.</summary>
    public string? ChatAdapterQuality { get; private init; }
    /// <summary>
    /// Why a chat adapter was left out, or null: one given apart (trained on another model, missing, broken; the
    /// folder's own is used instead), or any whose turn reader is not imported here (the chat then talks with
    /// <see cref="Model"/>).
    /// </summary>
    public string? ChatAdapterSkipped { get; private init; }

    private RsCapRetModel? _chatModel;
    private Device? _chatDevice;
    private bool _chatBf16;
    private readonly Lock _chatLoad = new();

    /// <summary>
    /// The model the chat talks with: the folder's chat adapter merged into a copy of the decoder, loaded on first use
    /// (ingestion and search never need it) and once however many requests ask at the same time; <see cref="Model"/>
    /// itself when the folder has no adapter.
    /// </summary>
    public RsCapRetModel ChatModel
    {
        get
        {
            if (ChatAdapterDirectory is null || Directory is null) return Model;
            lock (_chatLoad) return _chatModel ??= LoadChatOutsideDisposeScopes(Directory, ChatAdapterDirectory);
        }
    }

    /// <summary>
    /// Loads the chat model on a thread of its own: the first chat turn can come inside a caller's dispose scope (a
    /// turn's work runs in one), and the model's tensors would be freed with it; a dispose scope belongs to its thread.
    /// </summary>
    private RsCapRetModel LoadChatOutsideDisposeScopes(string directory, string chatDirectory)
    {
        RsCapRetModel? loaded = null;
        ExceptionDispatchInfo? failure = null;
        var thread = new Thread(() =>
        {
            try { loaded = RsCapRetModel.LoadChat(directory, _chatDevice, _chatBf16 ? ScalarType.BFloat16 : ScalarType.Float32, chatDirectory); }
            catch (Exception e) { failure = ExceptionDispatchInfo.Capture(e); }
        })
        { Name = "chat model load" };
        thread.Start();
        thread.Join();
        failure?.Throw();
        return loaded!;
    }

    /// <summary>How captions are decoded: the model folder's beam_width, 32 new tokens at most.</summary>
    public GenerationOptions Generation { get; init; } = new() { MaxNewTokens = 32 };

    private RsCapRetTileEncoder(RsCapRetModel model, LlamaTextTokenizer tokenizer, ImagePreprocessor pre, ModelIdentity identity)
    {
        Model = model; Tokenizer = tokenizer; Preprocessor = pre; Identity = identity;
    }

    /// <summary>
    /// Loads a model folder (rscapret.json + backbones + heads + tokenizer) on <paramref name="device"/>. The chat talks
    /// with <paramref name="chatAdapter"/> when given (a chat adapter folder shipped apart, `--chat-adapter`), else with
    /// the folder's own adapter. An adapter that is missing, broken or trained on another model is an error, or with
    /// <paramref name="skipUnfittingChatAdapter"/> (a server or worker whose model can be switched) left out and said in
    /// <see cref="ChatAdapterSkipped"/>.
    /// </summary>
    public static RsCapRetTileEncoder Load(string modelDirectory, string? device = "auto", bool bf16 = false, string? chatAdapter = null,
        bool skipUnfittingChatAdapter = false)
    {
        var dir = Path.GetFullPath(modelDirectory);
        if (!System.IO.Directory.Exists(dir)) throw new DirectoryNotFoundException($"{modelDirectory}: model folder does not exist");
        var cfg = RsCapRetConfig.Load(dir);
        var dev = TorchDevice.Resolve(device);
        // A chat adapter's config is read now, so a broken one is reported when the folder loads, not mid-conversation.
        string? skipped = null;
        var chatDirectory = cfg.Chat is { } c ? cfg.Resolve(dir, c) : null;
        ChatAdapterConfig? chat = null;
        if (chatAdapter is not null)
        {
            try
            {
                var given = Path.GetFullPath(chatAdapter);
                var givenConfig = ChatAdapterConfig.LoadFolder(given);
                givenConfig.RequireFits(given, RsCapRetModel.HeadsSha256(dir));
                (chatDirectory, chat) = (given, givenConfig);
            }
            catch (Exception e) when (skipUnfittingChatAdapter && e is CheckpointException or IOException or InvalidDataException)
            {
                // A process whose model can change (serve, workers) keeps the model's own chat and says why.
                skipped = $"the chat adapter {chatAdapter} is not used with this model: {e.Message}";
            }
        }
        chat ??= chatDirectory is null ? null : ChatAdapterConfig.Load(chatDirectory);
        if (chat?.TurnEncoder is { } turnEncoder)
        {
            try { BertSentenceEncoder.CheckExists(cfg.Resolve(chatDirectory!, turnEncoder)); }
            catch (CheckpointException e) when (skipUnfittingChatAdapter || chatAdapter is null)
            {
                // Its turn reader is an imported backbone (scripts/bootstrap.sh): without it captions, ingestion and search
                // still work, and the chat talks with the model's own decoder and says why.
                skipped = (skipped is null ? "" : skipped + "; ") + $"the chat adapter v{chat.Version} is not used: {e.Message}";
                (chatDirectory, chat) = (null, null);
            }
        }
        var model = RsCapRetModel.Load(dir, dev, bf16 ? ScalarType.BFloat16 : ScalarType.Float32);
        var tokenizer = LlamaTextTokenizer.Load(cfg.Resolve(dir, cfg.Tokenizer), model.RetTokenId);
        if (tokenizer.BosId != model.BosTokenId || tokenizer.EosId != model.EosTokenId)
            throw new InvalidOperationException($"{dir}: the tokenizer's BOS/EOS ({tokenizer.BosId}/{tokenizer.EosId}) differ from the LLM config's ({model.BosTokenId}/{model.EosTokenId})");
        return new RsCapRetTileEncoder(model, tokenizer, model.Preprocessor(InputSizeOf(cfg, dir)), IdentityOf(dir))
        {
            TrainingResolution = cfg.TrainingResolution,
            Generation = new GenerationOptions { MaxNewTokens = 32, BeamWidth = cfg.BeamWidth },
            Directory = dir,
            DialogueTrained = chat is not null || cfg.Dialogue,
            RetrievalAnswerNamesThing = chat?.RetrievalAnswerNamesThing ?? cfg.RetrievalAnswerNamesThing,
            ChatAdapterVersion = chat?.Version,
            ChatAdapterDirectory = chat is null ? null : chatDirectory,
            ChatAdapterQuality = chat?.Quality,
            ChatAdapterSkipped = skipped,
            _chatDevice = dev, _chatBf16 = bf16,
        };
    }

    /// <summary>
    /// What a model folder tiles scenes for — its input size (the tile size) and training resolution — read from its
    /// configs without loading weights; a loaded encoder reports the same.
    /// </summary>
    public static ModelTiling TilingOf(string modelDirectory)
    {
        var dir = Path.GetFullPath(modelDirectory);
        var cfg = RsCapRetConfig.Load(dir);
        return new ModelTiling(InputSizeOf(cfg, dir), cfg.TrainingResolution);
    }

    /// <summary>rscapret.json's image_size, else the vision backbone's own.</summary>
    private static int InputSizeOf(RsCapRetConfig cfg, string dir) => cfg.ImageSize ?? VisionBackbones.ImageSizeOf(cfg.Resolve(dir, cfg.Vision));

    /// <summary>The catalogue identity of a model folder, read without loading its weights.</summary>
    public static ModelIdentity IdentityOf(string modelDirectory)
    {
        var cfg = RsCapRetConfig.Load(modelDirectory);
        return new ModelIdentity(cfg.Name, cfg.Version, cfg.Llm, cfg.Vision, RsCapRetModel.HeadsSha256(modelDirectory), cfg.SharedDim);
    }

    public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, CancellationToken ct)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // One backbone pass per batch feeds both the vector and the caption.
        var pooled = Model.PooledImage(Preprocessor.Process(tiles));
        var vectors = Model.ImageEmbeddingFromPooled(pooled).to_type(ScalarType.Float32).cpu();
        ct.ThrowIfCancellationRequested();
        IReadOnlyList<int[]>? ids = caption ? Model.GenerateCaptionsFromPooled(pooled, Generation) : null;
        var result = new List<TileEncoding>(tiles.Count);
        for (var i = 0; i < tiles.Count; i++)
            result.Add(new TileEncoding(ids is null ? null : CleanCaption(Tokenizer.Decode(ids[i])), vectors[i].data<float>().ToArray()));
        return result;
    }

    /// <summary>
    /// Vectors, captions and cell vectors from one backbone pass: the pooled vector the caption and the tile's vector
    /// come from is the mean of the position features the cells come from.
    /// </summary>
    public IReadOnlyList<TileEncoding> Encode(IReadOnlyList<RgbImage> tiles, bool caption, bool cells, CancellationToken ct)
    {
        if (!cells) return Encode(tiles, caption, ct);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (pooled, cellVectors) = Model.PooledAndCellEmbeddings(Preprocessor.Process(tiles));
        var vectors = Model.ImageEmbeddingFromPooled(pooled).to_type(ScalarType.Float32).cpu();
        var normalised = nn.functional.normalize(cellVectors, dim: -1).cpu().contiguous();
        ct.ThrowIfCancellationRequested();
        IReadOnlyList<int[]>? ids = caption ? Model.GenerateCaptionsFromPooled(pooled, Generation) : null;
        int rows = (int)normalised.shape[1], cols = (int)normalised.shape[2], dim = (int)normalised.shape[3];
        var result = new List<TileEncoding>(tiles.Count);
        for (var i = 0; i < tiles.Count; i++)
        {
            var vector = vectors[i].data<float>().ToArray();
            var flat = normalised[i].reshape(rows * cols, dim).data<float>().ToArray();
            var perCell = Enumerable.Range(0, rows * cols).Select(k => flat.AsSpan(k * dim, dim).ToArray()).ToArray();
            result.Add(new TileEncoding(ids is null ? null : CleanCaption(Tokenizer.Decode(ids[i])), vector)
            { Cells = new TileCells(rows, cols, vector, perCell) });
        }
        return result;
    }

    /// <summary>Captions for images (e.g. files given on the command line).</summary>
    public IReadOnlyList<string> Caption(IReadOnlyList<RgbImage> images, GenerationOptions? options = null)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = Model.GenerateCaptions(Preprocessor.Process(images), options ?? Generation);
        return ids.Select(i => CleanCaption(Tokenizer.Decode(i))).ToList();
    }

    /// <summary>The L2-normalised [RET] vector of a text query.</summary>
    public float[] EmbedText(string text)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ArgumentException("The query text is empty.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var ids = Tokenizer.EncodeForRetrieval(text.Trim());
        var t = tensor(ids.Select(i => (long)i).ToArray()).unsqueeze(0);
        return Model.RetEmbedding(t).to_type(ScalarType.Float32).cpu()[0].data<float>().ToArray();
    }

    /// <summary>
    /// The [RET] vectors of several texts in one forward pass (right-padded and masked, so each equals its
    /// <see cref="EmbedText"/> up to float rounding): what a server answering concurrent queries batches.
    /// </summary>
    public IReadOnlyList<float[]> EmbedTexts(IReadOnlyList<string> texts)
    {
        if (texts.Count == 0) return [];
        if (texts.Any(string.IsNullOrWhiteSpace)) throw new ArgumentException("A query text is empty.");
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (ids, mask) = TokenBatch.PadRight(texts.Select(t => (IReadOnlyList<int>)Tokenizer.EncodeForRetrieval(t.Trim())).ToList());
        var vectors = Model.RetEmbedding(ids, mask).to_type(ScalarType.Float32).cpu();
        return Enumerable.Range(0, texts.Count).Select(i => vectors[i].data<float>().ToArray()).ToList();
    }

    /// <summary>The L2-normalised shared-space vector of an image (image-to-image search).</summary>
    public float[] EmbedImage(RgbImage image)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        return Model.ImageEmbedding(Preprocessor.Process([image])).to_type(ScalarType.Float32).cpu()[0].data<float>().ToArray();
    }

    /// <summary>
    /// Cell vectors of images (one forward pass): per image the L2-normalised vector of every position of the
    /// backbone's last feature map (7 × 7 at 224 px for ResNet18) and the tile's own normalised vector, which is the
    /// normalised mean of the cells before their normalisation. CLIP ViT backbones throw
    /// <see cref="CellVectorsNotAvailableException"/>.
    /// </summary>
    public IReadOnlyList<TileCells> EncodeCells(IReadOnlyList<RgbImage> images) => EncodeCells(Preprocessor.Process(images));

    /// <summary><see cref="EncodeCells(IReadOnlyList{RgbImage})"/> from pixel values [B, 3, H, W] (made by <see cref="Preprocessor"/>).</summary>
    public IReadOnlyList<TileCells> EncodeCells(Tensor pixels)
    {
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var (tile, cells) = Model.CellEmbeddings(pixels);
        tile = nn.functional.normalize(tile, dim: -1).cpu();
        cells = nn.functional.normalize(cells, dim: -1).cpu().contiguous();
        int n = (int)cells.shape[0], rows = (int)cells.shape[1], cols = (int)cells.shape[2], dim = (int)cells.shape[3];
        var result = new List<TileCells>(n);
        for (var i = 0; i < n; i++)
        {
            var flat = cells[i].reshape(rows * cols, dim).data<float>().ToArray();
            var vectors = Enumerable.Range(0, rows * cols).Select(k => flat.AsSpan(k * dim, dim).ToArray()).ToArray();
            result.Add(new TileCells(rows, cols, tile[i].data<float>().ToArray(), vectors));
        }
        return result;
    }

    /// <summary>
    /// Captions are display text: byte-fallback tokens can decode to control characters (PostgreSQL text cannot even
    /// hold NUL), so those go, and whitespace runs collapse.
    /// </summary>
    public static string CleanCaption(string text) =>
        string.Join(' ', new string(text.Where(c => !char.IsControl(c) || char.IsWhiteSpace(c)).ToArray())
            .Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries));

    public void Dispose()
    {
        _chatModel?.Dispose();
        Model.Dispose();
    }
}
