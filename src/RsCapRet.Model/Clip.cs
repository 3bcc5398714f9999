using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model.Checkpoints;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace RsCapRet.Model;

/// <summary>A CLIP tower's config (Hugging Face clip_vision_model / clip_text_model fields).</summary>
public sealed record ClipTowerConfig
{
    [JsonPropertyName("hidden_size")] public int HiddenSize { get; init; } = 768;
    [JsonPropertyName("intermediate_size")] public int IntermediateSize { get; init; } = 3072;
    [JsonPropertyName("num_hidden_layers")] public int NumHiddenLayers { get; init; } = 12;
    [JsonPropertyName("num_attention_heads")] public int NumAttentionHeads { get; init; } = 12;
    [JsonPropertyName("hidden_act")] public string HiddenAct { get; init; } = "quick_gelu";
    [JsonPropertyName("layer_norm_eps")] public double LayerNormEps { get; init; } = 1e-5;
    [JsonPropertyName("projection_dim")] public int? ProjectionDim { get; init; }
    // vision
    [JsonPropertyName("image_size")] public int ImageSize { get; init; } = 224;
    [JsonPropertyName("patch_size")] public int PatchSize { get; init; } = 32;
    [JsonPropertyName("num_channels")] public int NumChannels { get; init; } = 3;
    // text
    [JsonPropertyName("vocab_size")] public int VocabSize { get; init; } = 49408;
    [JsonPropertyName("max_position_embeddings")] public int MaxPositionEmbeddings { get; init; } = 77;
    [JsonPropertyName("eos_token_id")] public int EosTokenId { get; init; } = 49407;

    public void Validate(string path)
    {
        if (HiddenSize % NumAttentionHeads != 0)
            throw new CheckpointException(path, $"hidden_size {HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads}");
        if (HiddenAct is not ("quick_gelu" or "gelu"))
            throw new CheckpointException(path, $"hidden_act '{HiddenAct}' is not supported (quick_gelu or gelu)");
    }
}

/// <summary>A full CLIPModel config: both towers and the shared projection size.</summary>
public sealed record ClipConfig
{
    [JsonPropertyName("text_config")] public ClipTowerConfig Text { get; init; } = new();
    [JsonPropertyName("vision_config")] public ClipTowerConfig Vision { get; init; } = new();
    [JsonPropertyName("projection_dim")] public int ProjectionDim { get; init; } = 512;
    [JsonPropertyName("logit_scale_init_value")] public double LogitScaleInit { get; init; } = 2.6592;
}

public sealed class ClipAttention : nn.Module
{
    private readonly Linear q_proj, k_proj, v_proj, out_proj;
    private readonly int _heads, _headDim;

    public ClipAttention(ClipTowerConfig c) : base(nameof(ClipAttention))
    {
        _heads = c.NumAttentionHeads; _headDim = c.HiddenSize / c.NumAttentionHeads;
        q_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
        k_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
        v_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
        out_proj = nn.Linear(c.HiddenSize, c.HiddenSize);
        RegisterComponents();
    }

    /// <param name="mask">additive mask broadcastable to [B, heads, T, T], or null</param>
    public Tensor Forward(Tensor x, Tensor? mask)
    {
        long b = x.shape[0], t = x.shape[1];
        var q = (q_proj.forward(x) * Scalars.Of(1.0 / Math.Sqrt(_headDim))).view(b, t, _heads, _headDim).transpose(1, 2);
        var k = k_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var v = v_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2);
        var scores = matmul(q, k.transpose(2, 3));
        if (mask is not null) scores = scores + mask;
        var y = matmul(F.softmax(scores, -1), v).transpose(1, 2).reshape(b, t, _heads * _headDim);
        return out_proj.forward(y);
    }
}

public sealed class ClipMlp : nn.Module<Tensor, Tensor>
{
    private readonly Linear fc1, fc2;
    private readonly bool _quickGelu;

    public ClipMlp(ClipTowerConfig c) : base(nameof(ClipMlp))
    {
        fc1 = nn.Linear(c.HiddenSize, c.IntermediateSize);
        fc2 = nn.Linear(c.IntermediateSize, c.HiddenSize);
        _quickGelu = c.HiddenAct == "quick_gelu";
        RegisterComponents();
    }

    public override Tensor forward(Tensor x)
    {
        var h = fc1.forward(x);
        h = _quickGelu ? h * sigmoid(h * Scalars.Of(1.702)) : F.gelu(h);
        return fc2.forward(h);
    }
}

public sealed class ClipEncoderLayer : nn.Module
{
    private readonly ClipAttention self_attn;
    private readonly LayerNorm layer_norm1, layer_norm2;
    private readonly ClipMlp mlp;

    public ClipEncoderLayer(ClipTowerConfig c) : base(nameof(ClipEncoderLayer))
    {
        self_attn = new ClipAttention(c);
        layer_norm1 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        mlp = new ClipMlp(c);
        layer_norm2 = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask)
    {
        x = x + self_attn.Forward(layer_norm1.forward(x), mask);
        return x + mlp.forward(layer_norm2.forward(x));
    }
}

/// <summary>The transformer stack shared by both towers (the text tower passes a causal mask).</summary>
public sealed class ClipEncoder : nn.Module
{
    private readonly ModuleList<ClipEncoderLayer> layers;

    public ClipEncoder(ClipTowerConfig c) : base(nameof(ClipEncoder))
    {
        layers = new ModuleList<ClipEncoderLayer>(Enumerable.Range(0, c.NumHiddenLayers).Select(_ => new ClipEncoderLayer(c)).ToArray());
        RegisterComponents();
    }

    public Tensor Forward(Tensor x, Tensor? mask)
    {
        foreach (var layer in layers) x = layer.Forward(x, mask);
        return x;
    }
}

public sealed class ClipVisionEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Parameter class_embedding;
    private readonly Conv2d patch_embedding;
    private readonly Embedding position_embedding;

    public ClipVisionEmbeddings(ClipTowerConfig c) : base(nameof(ClipVisionEmbeddings))
    {
        class_embedding = new Parameter(randn(c.HiddenSize));
        patch_embedding = nn.Conv2d(c.NumChannels, c.HiddenSize, c.PatchSize, stride: c.PatchSize, bias: false);
        var patches = (c.ImageSize / c.PatchSize) * (c.ImageSize / c.PatchSize);
        position_embedding = nn.Embedding(patches + 1, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor pixels)
    {
        var b = pixels.shape[0];
        var patches = patch_embedding.forward(pixels.to_type(patch_embedding.weight!.dtype)).flatten(2).transpose(1, 2); // [B, P, D]
        var cls = class_embedding.expand(b, 1, -1);
        return cat([cls, patches], 1) + position_embedding.weight!.unsqueeze(0);
    }
}

/// <summary>Output of the vision tower: encoder output (before post_layernorm), pooled CLS (after it), projection.</summary>
public sealed record ClipVisionOutput(Tensor LastHiddenState, Tensor PooledOutput, Tensor? ImageEmbeds) : IDisposable
{
    public void Dispose() { LastHiddenState.Dispose(); PooledOutput.Dispose(); ImageEmbeds?.Dispose(); }
}

/// <summary>Hugging Face CLIPVisionTransformer (parameters under "vision_model.").</summary>
public sealed class ClipVisionTransformer : nn.Module
{
    private readonly ClipVisionEmbeddings embeddings;
    private readonly LayerNorm pre_layrnorm, post_layernorm;
    private readonly ClipEncoder encoder;

    public ClipVisionTransformer(ClipTowerConfig c) : base(nameof(ClipVisionTransformer))
    {
        embeddings = new ClipVisionEmbeddings(c);
        pre_layrnorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        encoder = new ClipEncoder(c);
        post_layernorm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        RegisterComponents();
    }

    public (Tensor Last, Tensor Pooled) Forward(Tensor pixels)
    {
        var last = encoder.Forward(pre_layrnorm.forward(embeddings.forward(pixels)), null);
        return (last, post_layernorm.forward(last.select(1, 0)));
    }
}

/// <summary>CLIPVisionModel / CLIPVisionModelWithProjection: the image encoder RS-CapRet freezes.</summary>
public sealed class ClipVisionModel : VisionBackbone
{
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear? visual_projection;

    public ClipTowerConfig Config { get; }
    public override int HiddenSize => Config.HiddenSize;
    public override int ImageSize => Config.ImageSize;
    public override string Architecture => "clip-vit";

    /// <summary>CLIP's resize, centre crop and mean/std normalisation.</summary>
    public override ImagePreprocessor Preprocessor(int? size = null) => new(size ?? ImageSize);

    /// <summary>The post-layernorm CLS vector.</summary>
    public override Tensor Pooled(Tensor pixels)
    {
        using var output = Forward(pixels);
        return output.PooledOutput.alias();
    }

    public ClipVisionModel(ClipTowerConfig config, int? projectionDim) : base(nameof(ClipVisionModel))
    {
        Config = config;
        vision_model = new ClipVisionTransformer(config);
        if (projectionDim is { } p) visual_projection = nn.Linear(config.HiddenSize, p, hasBias: false);
        RegisterComponents();
    }

    /// <summary>
    /// Loads a Hugging Face vision checkpoint: CLIPVisionModel(WithProjection) (top-level config) or the vision
    /// tower of a full CLIPModel (vision_config + projection_dim).
    /// </summary>
    public static ClipVisionModel FromPretrained(string directory, Device? device = null, ScalarType dtype = ScalarType.Float32)
    {
        var configPath = Path.Combine(directory, "config.json");
        var (tower, projection) = ReadVisionConfig(configPath);
        using var ckpt = Checkpoint.Open(directory);
        var withProjection = projection is not null && ckpt.Contains("visual_projection.weight") ? projection : null;
        var model = new ClipVisionModel(tower, withProjection);
        ckpt.LoadInto(model);
        model.eval();
        return (ClipVisionModel)model.to(dtype).to(device ?? CPU);
    }

    internal static (ClipTowerConfig Tower, int? Projection) ReadVisionConfig(string configPath)
    {
        using var doc = JsonDocument.Parse(File.Exists(configPath) ? File.ReadAllText(configPath)
            : throw new CheckpointException(configPath, "does not exist"));
        ClipTowerConfig tower;
        int? projection = null;
        if (doc.RootElement.TryGetProperty("vision_config", out var vc))
        {
            tower = vc.Deserialize<ClipTowerConfig>()!;
            if (doc.RootElement.TryGetProperty("projection_dim", out var pd)) projection = pd.GetInt32();
        }
        else
        {
            tower = doc.RootElement.Deserialize<ClipTowerConfig>()!;
            projection = tower.ProjectionDim;
        }
        tower.Validate(configPath);
        return (tower, projection);
    }

    /// <summary>Writes config.json and model.safetensors in Hugging Face CLIPVisionModel(WithProjection) layout.</summary>
    public override void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        var json = JsonSerializer.SerializeToNode(Config with { ProjectionDim = visual_projection is null ? null : (int)visual_projection.weight!.shape[0] })!.AsObject();
        json["architectures"] = new System.Text.Json.Nodes.JsonArray(visual_projection is null ? "CLIPVisionModel" : "CLIPVisionModelWithProjection");
        json["model_type"] = "clip_vision_model";
        foreach (var textOnly in new[] { "vocab_size", "max_position_embeddings", "eos_token_id" }) json.Remove(textOnly);
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"),
            named_parameters().Select(p => (p.name, (Tensor)p.parameter)), new Dictionary<string, string> { ["format"] = "pt" });
    }

    public ClipVisionOutput Forward(Tensor pixelValues)
    {
        using var scope = NewDisposeScope();
        var (last, pooled) = vision_model.Forward(pixelValues);
        var embeds = visual_projection?.forward(pooled);
        return new ClipVisionOutput(last.MoveToOuterDisposeScope(), pooled.MoveToOuterDisposeScope(), embeds?.MoveToOuterDisposeScope());
    }
}

public sealed class ClipTextEmbeddings : nn.Module<Tensor, Tensor>
{
    private readonly Embedding token_embedding, position_embedding;

    public ClipTextEmbeddings(ClipTowerConfig c) : base(nameof(ClipTextEmbeddings))
    {
        token_embedding = nn.Embedding(c.VocabSize, c.HiddenSize);
        position_embedding = nn.Embedding(c.MaxPositionEmbeddings, c.HiddenSize);
        RegisterComponents();
    }

    public override Tensor forward(Tensor ids) =>
        token_embedding.forward(ids) + position_embedding.weight!.narrow(0, 0, ids.shape[1]).unsqueeze(0);
}

/// <summary>Hugging Face CLIPTextTransformer (parameters under "text_model.").</summary>
public sealed class ClipTextTransformer : nn.Module
{
    private readonly ClipTextEmbeddings embeddings;
    private readonly ClipEncoder encoder;
    private readonly LayerNorm final_layer_norm;
    private readonly int _eosId;

    public ClipTextTransformer(ClipTowerConfig c) : base(nameof(ClipTextTransformer))
    {
        embeddings = new ClipTextEmbeddings(c);
        encoder = new ClipEncoder(c);
        final_layer_norm = nn.LayerNorm(c.HiddenSize, c.LayerNormEps);
        _eosId = c.EosTokenId;
        RegisterComponents();
    }

    /// <summary>Returns the final-normed hidden states and the pooled state at the first end-of-text token.</summary>
    public (Tensor Last, Tensor Pooled) Forward(Tensor ids)
    {
        long b = ids.shape[0], t = ids.shape[1];
        var x = embeddings.forward(ids);
        var causal = full(t, t, Scalars.Of(double.NegativeInfinity), x.dtype, x.device).triu(1).view(1, 1, t, t);
        var last = final_layer_norm.forward(encoder.Forward(x, causal));
        // The first position holding the end-of-text id (argmax of the equality picks the first maximum).
        var eosPos = ids.eq(_eosId).to_type(ScalarType.Int32).argmax(-1);
        var pooled = last[arange(b, device: ids.device), eosPos];
        return (last, pooled);
    }
}

/// <summary>The CLIP dual encoder (CLIPModel): text and image towers, projections and the logit scale.</summary>
public sealed class ClipModel : nn.Module
{
    private readonly ClipTextTransformer text_model;
    private readonly ClipVisionTransformer vision_model;
    private readonly Linear visual_projection, text_projection;
    private readonly Parameter logit_scale;

    public ClipConfig Config { get; }

    public ClipModel(ClipConfig config) : base(nameof(ClipModel))
    {
        Config = config;
        text_model = new ClipTextTransformer(config.Text);
        vision_model = new ClipVisionTransformer(config.Vision);
        visual_projection = nn.Linear(config.Vision.HiddenSize, config.ProjectionDim, hasBias: false);
        text_projection = nn.Linear(config.Text.HiddenSize, config.ProjectionDim, hasBias: false);
        logit_scale = new Parameter(tensor((float)config.LogitScaleInit));
        RegisterComponents();
    }

    public static ClipConfig LoadConfig(string configPath)
    {
        var cfg = ModelConfigs.Read<ClipConfig>(configPath);
        cfg.Text.Validate(configPath);
        cfg.Vision.Validate(configPath);
        return cfg;
    }

    public static ClipModel FromPretrained(string directory, Device? device = null)
    {
        var model = new ClipModel(LoadConfig(Path.Combine(directory, "config.json")));
        using (var ckpt = Checkpoint.Open(directory)) ckpt.LoadInto(model);
        model.eval();
        return (ClipModel)model.to(device ?? CPU);
    }

    /// <summary>Projected text embeddings (before normalisation) for CLIP token ids [B, T].</summary>
    public Tensor TextEmbeds(Tensor ids)
    {
        using var scope = NewDisposeScope();
        return text_projection.forward(text_model.Forward(ids).Pooled).MoveToOuterDisposeScope();
    }

    /// <summary>Projected image embeddings (before normalisation) for pixel values [B, 3, H, W].</summary>
    public Tensor ImageEmbeds(Tensor pixels)
    {
        using var scope = NewDisposeScope();
        return visual_projection.forward(vision_model.Forward(pixels).Pooled).MoveToOuterDisposeScope();
    }

    public Tensor LogitScale => logit_scale;

    /// <summary>exp(logit_scale) * normalised image @ normalised text^T.</summary>
    public static Tensor LogitsPerImage(Tensor imageEmbeds, Tensor textEmbeds, Tensor logitScale)
    {
        using var scope = NewDisposeScope();
        var img = F.normalize(imageEmbeds, dim: -1);
        var txt = F.normalize(textEmbeds, dim: -1);
        return (logitScale.exp() * matmul(img, txt.t())).MoveToOuterDisposeScope();
    }

    /// <summary>Writes config.json and model.safetensors in Hugging Face CLIPModel layout (both towers, projections, logit scale).</summary>
    public void SavePretrained(string directory)
    {
        Directory.CreateDirectory(directory);
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"),
            named_parameters().Select(p => (p.name, (Tensor)p.parameter)), new Dictionary<string, string> { ["format"] = "pt" });
        var json = JsonSerializer.SerializeToNode(Config)!.AsObject();
        json["architectures"] = new System.Text.Json.Nodes.JsonArray("CLIPModel");
        json["model_type"] = "clip";
        File.WriteAllText(Path.Combine(directory, "config.json"), json.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    /// <summary>Saves the vision tower (and projection) in Hugging Face CLIPVisionModelWithProjection layout.</summary>
    public void SaveVisionTower(string directory)
    {
        Directory.CreateDirectory(directory);
        var tensors = named_parameters().Where(p => p.name.StartsWith("vision_model.", StringComparison.Ordinal) || p.name.StartsWith("visual_projection.", StringComparison.Ordinal))
            .Select(p => (p.name, (Tensor)p.parameter)).ToList();
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        var v = Config.Vision;
        var json = JsonSerializer.Serialize(v with { ProjectionDim = Config.ProjectionDim }, Indented);
        using var doc = JsonDocument.Parse(json);
        var dict = doc.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => (object)p.Value.Clone());
        dict["architectures"] = new[] { "CLIPVisionModelWithProjection" };
        dict["model_type"] = "clip_vision_model";
        File.WriteAllText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(dict, Indented));
    }
}
