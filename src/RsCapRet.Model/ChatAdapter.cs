using System.Text.Json;
using System.Text.Json.Serialization;
using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model;

/// <summary>
/// chat.json of a chat adapter folder (issue 34): the chat's own low-rank update of the search's decoder, its own
/// [RET] projection and turn reading, trained on dialogues with the image side frozen. A model folder names it in
/// rscapret.json's "chat"; captions at ingestion and search's [RET] never use it, so search stays the model's.
/// </summary>
public sealed record ChatAdapterConfig
{
    [JsonPropertyName("format")] public string Format { get; init; } = FormatName;
    /// <summary>The adapter's own version (the base model keeps its version: the catalogue's identity).</summary>
    [JsonPropertyName("version")] public string Version { get; init; } = "";
    [JsonPropertyName("rank")] public int Rank { get; init; }
    [JsonPropertyName("alpha")] public double Alpha { get; init; }
    /// <summary>SHA-256 of the heads file of the model it was trained on: an adapter only fits the decoder it adapts.</summary>
    [JsonPropertyName("base_heads_sha256")] public string BaseHeadsSha256 { get; init; } = "";
    /// <summary>The frozen sentence encoder that reads each user turn (as rscapret.json's turn_encoder), or null.</summary>
    [JsonPropertyName("turn_encoder")] public string? TurnEncoder { get; init; }
    /// <summary>Whether a retrieval answer was trained to name what it searches for (as rscapret.json's).</summary>
    [JsonPropertyName("retrieval_answer_names_thing")] public bool RetrievalAnswerNamesThing { get; init; }
    /// <summary>The adapters (decoder tensor names + ".lora_a"/".lora_b") and "heads.*" tensors that replace the base heads'.</summary>
    [JsonPropertyName("weights")] public string Weights { get; init; } = "adapter.safetensors";
    /// <summary>What its evaluation measured, in a line (said when a chat starts with it), or null.</summary>
    [JsonPropertyName("quality")] public string? Quality { get; init; }

    public const string FileName = "chat.json";
    public const string FormatName = "rscapret-chat-adapter";

    public static ChatAdapterConfig Load(string chatDirectory)
    {
        var path = Path.Combine(chatDirectory, FileName);
        var cfg = ModelConfigs.Read<ChatAdapterConfig>(path);
        if (cfg.Format != FormatName) throw new CheckpointException(path, $"format is '{cfg.Format}', not '{FormatName}'");
        if (cfg.Rank < 1) throw new CheckpointException(path, "rank must be at least 1");
        if (!(cfg.Alpha > 0)) throw new CheckpointException(path, "alpha must be positive");
        if (cfg.BaseHeadsSha256.Length != 64) throw new CheckpointException(path, "base_heads_sha256 must name the heads file it was trained on");
        if (!File.Exists(Path.Combine(chatDirectory, cfg.Weights))) throw new CheckpointException(path, $"names weights '{cfg.Weights}', which are not in {chatDirectory}");
        return cfg;
    }

    /// <summary>An adapter folder named on its own (`--chat-adapter`, RSCAPRET_CHAT_ADAPTER): a missing folder is said as such.</summary>
    public static ChatAdapterConfig LoadFolder(string chatDirectory) => Directory.Exists(chatDirectory)
        ? Load(chatDirectory) : throw new DirectoryNotFoundException($"{chatDirectory}: chat adapter folder does not exist");

    /// <summary>Null when the adapter was trained on the model whose heads hash <paramref name="headsSha256"/>, else why it does not fit.</summary>
    public string? MismatchWith(string headsSha256) =>
        string.Equals(BaseHeadsSha256, headsSha256, StringComparison.OrdinalIgnoreCase) ? null
            : $"was trained on the model whose heads hash {BaseHeadsSha256[..12]}…, not this folder's ({headsSha256[..12]}…): an adapter only fits the decoder it adapts";

    /// <summary>Throws, naming chat.json, when the adapter was not trained on the model whose heads hash <paramref name="headsSha256"/>.</summary>
    public void RequireFits(string chatDirectory, string headsSha256)
    {
        if (MismatchWith(headsSha256) is { } problem) throw new CheckpointException(Path.Combine(chatDirectory, FileName), problem);
    }

    private static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };

    public void Save(string chatDirectory)
    {
        Directory.CreateDirectory(chatDirectory);
        File.WriteAllText(Path.Combine(chatDirectory, FileName), JsonSerializer.Serialize(this, Indented));
    }

    /// <summary>Which heads the chat trains and stores: the [RET] projection and the turn reading (the image side stays the base's).</summary>
    public static bool IsChatHead(string headName) =>
        headName.StartsWith("ret_to_shared.", StringComparison.Ordinal) || headName.StartsWith("turn_reading.", StringComparison.Ordinal);

    /// <summary>
    /// Writes a trained chat model's adapter folder: chat.json and its weights in float16 (they are merged into float32
    /// weights when loaded; the folder's size is a criterion).
    /// </summary>
    public void Write(string chatDirectory, RsCapRetModel model)
    {
        var tensors = model.Llm.AdapterTensors().ToList();
        if (tensors.Count == 0) throw new InvalidOperationException("The model carries no low-rank adapters to save.");
        tensors.AddRange(model.Heads.named_parameters().Where(p => IsChatHead(p.name)).Select(p => ("heads." + p.name, (Tensor)p.parameter)));
        Save(chatDirectory);
        using var scope = NewDisposeScope();
        SafetensorsWriter.Write(Path.Combine(chatDirectory, Weights), tensors.Select(t => (t.Item1, t.Item2.detach().cpu().to_type(ScalarType.Float16))).ToList(),
            new Dictionary<string, string> { ["format"] = FormatName });
    }
}
