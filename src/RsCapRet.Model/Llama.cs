using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>The fields of a Hugging Face LlamaForCausalLM config.json that the model needs.</summary>
public sealed record LlamaConfig
{
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; }
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; }
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; }
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; }
    [JsonPropertyName("num_key_value_heads")] public int? NumKeyValueHeads { get; init; }
    [JsonPropertyName("head_dim")] public int? HeadDimOverride { get; init; }
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; }
    [JsonPropertyName("rms_norm_eps")] public double RmsNormEps { get; init; } = 1e-6;
    [JsonPropertyName("rope_theta")] public double RopeTheta { get; init; } = 10000;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 4096;
    [JsonPropertyName("tie_word_embeddings")] public bool TieWordEmbeddings { get; init; }
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "silu";
    [JsonPropertyName("bos_token_id")] public int BosTokenId { get; init; } = 1;
    [JsonPropertyName("eos_token_id")] public int EosTokenId { get; init; } = 2;
    [JsonPropertyName("architectures")] public string[]? Architectures { get; init; }

    [JsonIgnore] public int KeyValueHeads => NumKeyValueHeads ?? NumAttentionHeads;
    [JsonIgnore] public int HeadDim => HeadDimOverride ?? HiddenSize / NumAttentionHeads;

    public static LlamaConfig Load(string configPath)
    {
        var cfg = ModelConfigs.Read<LlamaConfig>(configPath);
        if (cfg.HiddenSize <= 0 || cfg.NumHiddenLayers <= 0 || cfg.NumAttentionHeads <= 0 || cfg.VocabSize <= 0 || cfg.IntermediateSize <= 0)
            throw new CheckpointException(configPath, "is not a Llama config (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, vocab_size needed)");
        if (cfg.HeadDimOverride is null && cfg.HiddenSize % cfg.NumAttentionHeads != 0)
            throw new CheckpointException(configPath, $"hidden_size {cfg.HiddenSize} is not divisible by num_attention_heads {cfg.NumAttentionHeads}");
        if (cfg.NumAttentionHeads % cfg.KeyValueHeads != 0)
            throw new CheckpointException(configPath, $"num_attention_heads {cfg.NumAttentionHeads} is not a multiple of num_key_value_heads {cfg.KeyValueHeads}");
        if (cfg.HiddenAct != "silu") throw new CheckpointException(configPath, $"hidden_act '{cfg.HiddenAct}' is not supported (Llama uses silu)");
        return cfg;
    }
}

/// <summary>Per-layer key/value tensors of the tokens seen so far, for incremental decoding.</summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor?[] _keys, _values;
    public KvCache(int layers) { _keys = new Tensor?[layers]; _values = new Tensor?[layers]; }

    /// <summary>Number of cached positions.</summary>
    public long Length => _keys[0]?.shape[2] ?? 0;

    /// <summary>Appends this step's keys/values for <paramref name="layer"/> and returns the full ones.</summary>
    internal (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        Tensor nk = _keys[layer] is { } pk ? cat([pk, k], 2) : k.alias();
        Tensor nv = _values[layer] is { } pv ? cat([pv, v], 2) : v.alias();
        _keys[layer]?.Dispose();
        _values[layer]?.Dispose();
        // The cache outlives the per-step dispose scopes of the caller.
        _keys[layer] = nk.DetachFromDisposeScope();
        _values[layer] = nv.DetachFromDisposeScope();
        return (nk, nv);
    }

    /// <summary>Keeps only the batch rows in <paramref name="rows"/> (beam search reordering).</summary>
    public void Select(Tensor rows)
    {
        for (var i = 0; i < _keys.Length; i++)
        {
            if (_keys[i] is null) continue;
            var k = _keys[i]!.index_select(0, rows).DetachFromDisposeScope();
            var v = _values[i]!.index_select(0, rows).DetachFromDisposeScope();
            _keys[i]!.Dispose(); _values[i]!.Dispose();
            _keys[i] = k; _values[i] = v;
        }
    }

    public void Dispose()
    {
        foreach (var t in _keys) t?.Dispose();
        foreach (var t in _values) t?.Dispose();
        Array.Clear(_keys);
        Array.Clear(_values);
    }
}

/// <summary>Root-mean-square layer norm, computed in float32 as the reference does.</summary>
public sealed class RmsNorm : nn.Module<Tensor, Tensor>
{
    private readonly Parameter weight;
    private readonly double _eps;

    public RmsNorm(int size, double eps) : base(nameof(RmsNorm))
    {
        weight = new Parameter(ones(size));
        _eps = eps;
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        var h = x.to_type(ScalarType.Float32);
        h = h * rsqrt(h.square().mean([-1], keepdim: true) + Scalars.Of(_eps));
        return (weight * h.to_type(x.dtype)).MoveToOuterDisposeScope();
    }
}

/// <summary>Rotary position embedding in Hugging Face's rotate-half layout.</summary>
internal static class Rotary
{
    public static (Tensor Cos, Tensor Sin) CosSin(Tensor positionIds, int headDim, double theta, ScalarType dtype)
    {
        using var scope = NewDisposeScope();
        var invFreq = pow(theta, arange(0, headDim, 2, ScalarType.Int64, positionIds.device).to_type(ScalarType.Float32) / Scalars.Of((double)headDim)).reciprocal();
        var freqs = positionIds.to_type(ScalarType.Float32).unsqueeze(-1) * invFreq;   // [B, T, hd/2]
        var emb = cat([freqs, freqs], -1).unsqueeze(1);                                  // [B, 1, T, hd]
        return (emb.cos().to_type(dtype).MoveToOuterDisposeScope(), emb.sin().to_type(dtype).MoveToOuterDisposeScope());
    }

    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        var half = x.shape[^1] / 2;
        var rotated = cat([-x.narrow(-1, half, half), x.narrow(-1, 0, half)], -1);
        return x * cos + rotated * sin;
    }
}

public sealed class LlamaAttention : nn.Module
{
    private readonly AdaptableLinear q_proj, k_proj, v_proj, o_proj;
    private readonly int _heads, _kvHeads, _headDim;

    public LlamaAttention(LlamaConfig c) : base(nameof(LlamaAttention))
    {
        _heads = c.NumAttentionHeads; _kvHeads = c.KeyValueHeads; _headDim = c.HeadDim;
        q_proj = new AdaptableLinear(c.HiddenSize, _heads * _headDim);
        k_proj = new AdaptableLinear(c.HiddenSize, _kvHeads * _headDim);
        v_proj = new AdaptableLinear(c.HiddenSize, _kvHeads * _headDim);
        o_proj = new AdaptableLinear(_heads * _headDim, c.HiddenSize);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer) =>
        Forward(x, cos, sin, x, cos, sin, mask, cache, layer);

    /// <summary>
    /// Attention of the query rows <paramref name="xq"/> [B, Tq, hidden] (rotary <paramref name="cosQ"/>/<paramref name="sinQ"/>)
    /// over the keys and values of <paramref name="xkv"/> [B, T, hidden]; <paramref name="mask"/> [B, 1, Tq, past+T].
    /// </summary>
    public Tensor Forward(Tensor xq, Tensor cosQ, Tensor sinQ, Tensor xkv, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer)
    {
        long b = xq.shape[0], t = xq.shape[1], tk = xkv.shape[1];
        var q = q_proj.forward(xq).view(b, t, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(xkv).view(b, tk, _kvHeads, _headDim).transpose(1, 2);
        var v = v_proj.forward(xkv).view(b, tk, _kvHeads, _headDim).transpose(1, 2);
        q = Rotary.Apply(q, cosQ, sinQ);
        k = Rotary.Apply(k, cos, sin);
        if (cache != null) (k, v) = cache.Append(layer, k, v);
        if (_kvHeads != _heads)
        {
            // Grouped-query attention: each key/value head serves heads/kvHeads query heads.
            k = k.repeat_interleave(_heads / _kvHeads, 1);
            v = v.repeat_interleave(_heads / _kvHeads, 1);
        }
        var scores = matmul(q, k.transpose(2, 3)) * Scalars.Of(1.0 / Math.Sqrt(_headDim)) + mask;
        var weights = F.softmax(scores, -1, ScalarType.Float32).to_type(q.dtype);
        var y = matmul(weights, v).transpose(1, 2).reshape(b, t, _heads * _headDim);
        return o_proj.forward(y);
    }
}

public sealed class LlamaMlp : nn.Module<Tensor, Tensor>
{
    private readonly AdaptableLinear gate_proj, up_proj, down_proj;

    public LlamaMlp(LlamaConfig c) : base(nameof(LlamaMlp))
    {
        gate_proj = new AdaptableLinear(c.HiddenSize, c.IntermediateSize);
        up_proj = new AdaptableLinear(c.HiddenSize, c.IntermediateSize);
        down_proj = new AdaptableLinear(c.IntermediateSize, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor x) => down_proj.forward(F.silu(gate_proj.forward(x)) * up_proj.forward(x));
}

public sealed class LlamaDecoderLayer : nn.Module
{
    private readonly LlamaAttention self_attn;
    private readonly LlamaMlp mlp;
    private readonly RmsNorm input_layernorm, post_attention_layernorm;

    public LlamaDecoderLayer(LlamaConfig c) : base(nameof(LlamaDecoderLayer))
    {
        self_attn = new LlamaAttention(c);
        mlp = new LlamaMlp(c);
        input_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        post_attention_layernorm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, Tensor mask, KvCache? cache, int layer)
    {
        x = x + self_attn.Forward(input_layernorm.forward(x), cos, sin, mask, cache, layer);
        return x + mlp.forward(post_attention_layernorm.forward(x));
    }

    /// <summary>
    /// The layer's output at one position per row (<paramref name="rows"/> [B]) only, [B, 1, hidden]: the keys and
    /// values still come from every position, but the query, the output projection and the MLP run for one row.
    /// </summary>
    public Tensor ForwardAt(Tensor x, Tensor rows, Tensor cos, Tensor sin, Tensor mask, int layer)
    {
        var batch = arange(x.shape[0], device: x.device);
        var normed = input_layernorm.forward(x);
        // cos/sin are [B, 1, T, head dim] and the mask [B, 1, T, T]: their row at each row's position, kept 4-d.
        static Tensor At(Tensor t, Tensor batch, Tensor rows) => t.squeeze(1)[batch, rows].unsqueeze(1).unsqueeze(1);
        var xr = x[batch, rows].unsqueeze(1);
        xr = xr + self_attn.Forward(normed[batch, rows].unsqueeze(1), At(cos, batch, rows), At(sin, batch, rows),
            normed, cos, sin, At(mask, batch, rows), null, layer);
        return xr + mlp.forward(post_attention_layernorm.forward(xr));
    }
}

/// <summary>The decoder stack without the LM head (Hugging Face's LlamaModel, parameters under "model.").</summary>
public sealed class LlamaModel : nn.Module
{
    internal readonly Embedding embed_tokens;
    private readonly ModuleList<LlamaDecoderLayer> layers;
    private readonly RmsNorm norm;

    public LlamaModel(LlamaConfig c) : base(nameof(LlamaModel))
    {
        embed_tokens = nn.Embedding(c.VocabSize, c.HiddenSize);
        layers = new ModuleList<LlamaDecoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new LlamaDecoderLayer(c)).ToArray());
        norm = new RmsNorm(c.HiddenSize, c.RmsNormEps);
        RegisterComponents();
    }

    internal Tensor Forward(Tensor embeds, Tensor cos, Tensor sin, Tensor mask, KvCache? cache)
    {
        var x = embeds;
        for (var i = 0; i < layers.Count; i++) x = layers[i].Forward(x, cos, sin, mask, cache, i);
        return norm.forward(x);
    }

    /// <summary>The final hidden state at one position per row, [B, hidden]; the last layer runs for those rows only.</summary>
    internal Tensor ForwardAt(Tensor embeds, Tensor rows, Tensor cos, Tensor sin, Tensor mask)
    {
        var x = embeds;
        for (var i = 0; i < layers.Count - 1; i++) x = layers[i].Forward(x, cos, sin, mask, null, i);
        return norm.forward(layers[^1].ForwardAt(x, rows, cos, sin, mask, layers.Count - 1)).squeeze(1);
    }
}

/// <summary>Output of a Llama forward pass: vocabulary logits and the last hidden state (after the final norm).</summary>
public sealed record LlamaOutput(Tensor Logits, Tensor LastHiddenState) : IDisposable
{
    public void Dispose() { Logits.Dispose(); LastHiddenState.Dispose(); }
}

/// <summary>
/// LlamaForCausalLM: token ids or input embeddings in, logits and last hidden state out; optional attention mask
/// (1 = token, 0 = padding) and KV cache for generation.
/// </summary>
public sealed class LlamaForCausalLM : nn.Module
{
    private readonly LlamaModel model;
    private readonly Linear lm_head;

    public LlamaConfig Config { get; private set; }
    public int VocabSize => (int)lm_head.weight!.shape[0];

    public LlamaForCausalLM(LlamaConfig config) : base(nameof(LlamaForCausalLM))
    {
        Config = config;
        model = new LlamaModel(config);
        lm_head = nn.Linear(config.HiddenSize, config.VocabSize, hasBias: false);
        RegisterComponents();
    }

    /// <summary>Loads config.json and the safetensors weights of a Hugging Face Llama folder.</summary>
    public static LlamaForCausalLM FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var config = LlamaConfig.Load(Path.Combine(directory, "config.json"));
        // Build the module in the target dtype: a 7B model built in float32 first would need twice its memory.
        var previous = get_default_dtype();
        set_default_dtype(dtype);
        LlamaForCausalLM llm;
        try { llm = new LlamaForCausalLM(config); }
        finally { set_default_dtype(previous); }
        using (var ckpt = Checkpoint.Open(directory))
        {
            if (config.TieWordEmbeddings && !ckpt.Contains("lm_head.weight"))
            {
                ckpt.LoadInto(llm, skip: new HashSet<string> { "lm_head.weight" });
                using var _ = no_grad();
                llm.lm_head.weight!.copy_(llm.model.embed_tokens.weight!);
            }
            else ckpt.LoadInto(llm);
        }
        llm.eval();
        return (LlamaForCausalLM)llm.to(dtype).to(device ?? CPU);
    }

    /// <summary>Writes config.json and model.safetensors in Hugging Face LlamaForCausalLM layout.</summary>
    public void SavePretrained(string directory)
    {
        // An adapted decoder's own weights are not what it computes: its adapters are saved apart (AdapterTensors).
        if (AdaptableLayers().Any(l => l.Layer.HasAdapter)) throw new InvalidOperationException("This decoder carries low-rank adapters; save them apart, not as a Llama folder.");
        Directory.CreateDirectory(directory);
        var config = Config with { Architectures = ["LlamaForCausalLM"] };
        var json = JsonSerializer.SerializeToNode(config)!.AsObject();
        json["model_type"] = "llama";
        json["torch_dtype"] = "float32";
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"),
            named_parameters().Select(p => (p.name, (Tensor)p.parameter)), new Dictionary<string, string> { ["format"] = "pt" });
    }

    public Tensor EmbedTokens(Tensor ids) => model.embed_tokens.forward(ids);

    public Tensor EmbeddingWeight => model.embed_tokens.weight!;
    public Tensor LmHeadWeight => lm_head.weight!;

    /// <summary>
    /// Appends new token rows (as many as the given rows) to the embedding and the LM head (e.g. [RET]), initialised
    /// from <paramref name="embeddingRows"/>/<paramref name="lmHeadRows"/> ([rows, hidden]); returns the first new id.
    /// </summary>
    public int GrowVocabulary(Tensor embeddingRows, Tensor lmHeadRows)
    {
        var first = VocabSize;
        using var _ = no_grad();
        var emb = cat([model.embed_tokens.weight!, embeddingRows.to(model.embed_tokens.weight!.dtype, model.embed_tokens.weight!.device)], 0);
        var head = cat([lm_head.weight!, lmHeadRows.to(lm_head.weight!.dtype, lm_head.weight!.device)], 0);
        var newSize = (int)emb.shape[0]; // read before the Parameters take over the tensors' handles
        model.embed_tokens.weight = new Parameter(emb, requires_grad: model.embed_tokens.weight!.requires_grad);
        lm_head.weight = new Parameter(head, requires_grad: lm_head.weight!.requires_grad);
        Config = Config with { VocabSize = newSize };
        return first;
    }

    /// <summary>The decoder's projections that can carry a low-rank adapter, by parameter prefix ("model.layers.0.self_attn.q_proj").</summary>
    public IEnumerable<(string Name, AdaptableLinear Layer)> AdaptableLayers() =>
        named_modules().Where(m => m.module is AdaptableLinear).Select(m => (m.name, (AdaptableLinear)m.module));

    /// <summary>
    /// Freezes every weight of the decoder and attaches a trainable low-rank adapter to each attention and MLP
    /// projection (embeddings, norms and the LM head stay as they are); returns the adapters' parameter count.
    /// </summary>
    public long AddLowRankAdapters(int rank, double alpha, long seed)
    {
        foreach (var p in parameters()) p.requires_grad = false;
        using var generator = new Generator((ulong)seed);
        foreach (var (_, layer) in AdaptableLayers()) layer.AddAdapter(rank, alpha, generator);
        return AdapterTensors().Sum(t => t.Tensor.numel());
    }

    /// <summary>The adapters' A and B matrices by parameter name ("….q_proj.lora_a"), as a chat adapter file stores them.</summary>
    public IReadOnlyList<(string Name, Tensor Tensor)> AdapterTensors() =>
        [.. named_parameters().Where(p => p.name.EndsWith(".lora_a", StringComparison.Ordinal) || p.name.EndsWith(".lora_b", StringComparison.Ordinal))
            .Select(p => (p.name, (Tensor)p.parameter))];

    /// <summary>
    /// Merges saved adapters into the weights: for every adaptable layer, <paramref name="read"/> gives its A and B
    /// (by "NAME.lora_a"/"NAME.lora_b"); a layer without them stays as it is. Returns the layers merged.
    /// </summary>
    public int MergeAdapters(Func<string, Tensor?> read, double alpha)
    {
        var merged = 0;
        foreach (var (name, layer) in AdaptableLayers())
        {
            var a = read(name + ".lora_a");
            var b = read(name + ".lora_b");
            if (a is null && b is null) continue;
            if (a is null || b is null) throw new ArgumentException($"{name}: the adapter has only one of its two matrices");
            layer.Merge(a, b, alpha);
            merged++;
        }
        return merged;
    }

    /// <summary>Forward pass over token ids.</summary>
    public LlamaOutput Forward(Tensor inputIds, Tensor? attentionMask = null, KvCache? cache = null, Tensor? positionIds = null) =>
        ForwardEmbeds(EmbedTokens(inputIds), attentionMask, cache, positionIds);

    /// <summary>
    /// Forward pass over input embeddings [B, T, hidden]. <paramref name="attentionMask"/> [B, past+T] marks real
    /// tokens with 1; positions default to the running count of real tokens (so left padding works).
    /// </summary>
    public LlamaOutput ForwardEmbeds(Tensor embeds, Tensor? attentionMask = null, KvCache? cache = null, Tensor? positionIds = null)
    {
        using var scope = NewDisposeScope();
        var (mask, cos, sin) = MaskAndRotary(embeds, attentionMask, cache, positionIds);
        var hidden = model.Forward(embeds, cos, sin, mask, cache);
        var logits = lm_head.forward(hidden);
        return new LlamaOutput(logits.MoveToOuterDisposeScope(), hidden.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// The last hidden state (after the final norm) of token ids [B, T] at one position per row (<paramref name="rows"/>
    /// [B]), [B, hidden]: what a [RET] vector needs. Equal to <see cref="Forward"/>'s LastHiddenState at those rows, but
    /// without the LM head, and the last layer runs for those rows only.
    /// </summary>
    public Tensor HiddenAt(Tensor inputIds, Tensor rows, Tensor? attentionMask = null)
    {
        using var scope = NewDisposeScope();
        var embeds = EmbedTokens(inputIds);
        var (mask, cos, sin) = MaskAndRotary(embeds, attentionMask, null, null);
        return model.ForwardAt(embeds, rows, cos, sin, mask).MoveToOuterDisposeScope();
    }

    private (Tensor Mask, Tensor Cos, Tensor Sin) MaskAndRotary(Tensor embeds, Tensor? attentionMask, KvCache? cache, Tensor? positionIds)
    {
        long b = embeds.shape[0], t = embeds.shape[1], past = cache?.Length ?? 0, total = past + t;
        var device = embeds.device;
        attentionMask ??= ones(b, total, ScalarType.Int64, device);
        if (attentionMask.shape[1] != total)
            throw new ArgumentException($"attention mask covers {attentionMask.shape[1]} positions; {total} expected (past {past} + {t}).");
        positionIds ??= (attentionMask.to_type(ScalarType.Int64).cumsum(1) - Scalars.Of(1L)).clamp_min(Scalars.Of(0L)).narrow(1, past, t);

        // Additive mask [B, 1, T, past+T]: causal (key position <= query position) and not padding.
        var queryPos = arange(past, total, device: device).view(1, 1, t, 1);
        var keyPos = arange(0, total, device: device).view(1, 1, 1, total);
        var allowed = keyPos.le(queryPos).logical_and(attentionMask.view(b, 1, 1, total).to_type(ScalarType.Bool));
        var minValue = embeds.dtype == ScalarType.Float32 ? float.MinValue : -1e4f;
        var mask = zeros(b, 1, t, total, embeds.dtype, device).masked_fill(allowed.logical_not(), Scalars.Of((double)minValue));

        var (cos, sin) = Rotary.CosSin(positionIds, Config.HeadDim, Config.RopeTheta, embeds.dtype);
        return (mask, cos, sin);
    }
}

/// <summary>Reading config.json files with clear errors.</summary>
public static class ModelConfigs
{
    public static T Read<T>(string path)
    {
        if (!File.Exists(path)) throw new CheckpointException(path, "does not exist");
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path)) ?? throw new CheckpointException(path, "is empty");
        }
        catch (JsonException e)
        {
            throw new CheckpointException(path, "is not valid JSON: " + e.Message, e);
        }
    }
}
