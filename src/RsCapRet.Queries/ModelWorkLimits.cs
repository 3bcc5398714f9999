using RsCapRet.Inference;
using RsCapRet.Model;
using static TorchSharp.torch;

namespace RsCapRet.Queries;

/// <summary>
/// How much model work one request may cause: prompts (labels) per request, tokens per prompt after the template is
/// applied (counted with the model's tokenizer, BOS and [RET] included), tokens of all its prompts together, and how
/// many prompts go through one forward pass (padded batches stay small; cancellation is checked between passes).
/// The host uses <see cref="FromEnvironment"/>; `rscapret classify` the same per-prompt limit without the per-request ones.
/// </summary>
public sealed record ModelWorkLimits
{
    public const string MaxPromptsVariable = "RSCAPRET_MAX_LABELS";
    public const string MaxPromptTokensVariable = "RSCAPRET_MAX_PROMPT_TOKENS";
    public const string MaxRequestTokensVariable = "RSCAPRET_MAX_REQUEST_TOKENS";

    /// <summary>Prompts (land-use labels) one request may embed.</summary>
    [Core.Configuration.EnvironmentVariable(MaxPromptsVariable, Core.Configuration.SettingRule.PositiveInteger)]
    public int MaxPrompts { get; init; } = 64;
    /// <summary>Tokens of one prompt after the template is applied (BOS and [RET] included).</summary>
    [Core.Configuration.EnvironmentVariable(MaxPromptTokensVariable, Core.Configuration.SettingRule.PositiveInteger)]
    public int MaxPromptTokens { get; init; } = 128;
    /// <summary>Tokens of all the prompts of one request together: the bound on its forward passes' work.</summary>
    [Core.Configuration.EnvironmentVariable(MaxRequestTokensVariable, Core.Configuration.SettingRule.PositiveInteger)]
    public int MaxRequestTokens { get; init; } = 4096;
    /// <summary>Prompts in one forward pass.</summary>
    public int PromptsPerPass { get; init; } = 16;

    /// <summary>The defaults above, each overridable: RSCAPRET_MAX_LABELS, RSCAPRET_MAX_PROMPT_TOKENS, RSCAPRET_MAX_REQUEST_TOKENS.</summary>
    public static ModelWorkLimits FromEnvironment() => Core.Configuration.EnvironmentSettings.Load<ModelWorkLimits>();

    /// <summary>The command line's: the per-prompt token limit (RSCAPRET_MAX_PROMPT_TOKENS); labels and total bounded only by the map's 254 classes.</summary>
    public static ModelWorkLimits CommandLine() => new()
    {
        MaxPrompts = LandUseQuery.MaxLabels,
        MaxPromptTokens = FromEnvironment().MaxPromptTokens,
        MaxRequestTokens = int.MaxValue,
    };

    /// <summary>
    /// The retrieval token ids of each prompt, refused (<see cref="ModelWorkLimitException"/>) when there are too many
    /// prompts, one is too long, or all together are more than one request may embed — before any forward pass.
    /// </summary>
    public IReadOnlyList<IReadOnlyList<int>> Tokenize(Model.Tokenizers.LlamaTextTokenizer tokenizer, IReadOnlyList<string> prompts, string what = "prompt")
    {
        if (prompts.Count > MaxPrompts)
            throw new ModelWorkLimitException($"{prompts.Count} {what}s in one request; at most {MaxPrompts} are allowed ({MaxPromptsVariable})");
        var rows = new List<IReadOnlyList<int>>(prompts.Count);
        long total = 0;
        foreach (var prompt in prompts)
        {
            if (string.IsNullOrWhiteSpace(prompt)) throw new ModelWorkLimitException($"a {what} is empty");
            // A prompt far longer in characters than any allowed token count is refused without tokenizing it.
            var ids = prompt.Length > 16L * MaxPromptTokens ? null : tokenizer.EncodeForRetrieval(prompt.Trim());
            if (ids is null || ids.Count > MaxPromptTokens)
                throw new ModelWorkLimitException($"the {what} \"{Shorten(prompt)}\" is {(ids is null ? $"over {16L * MaxPromptTokens} characters" : $"{ids.Count} tokens")} long; " +
                                                  $"at most {MaxPromptTokens} tokens are allowed ({MaxPromptTokensVariable})");
            total += ids.Count;
            if (total > MaxRequestTokens)
                throw new ModelWorkLimitException($"the {what}s of this request are more than {MaxRequestTokens} tokens together; " +
                                                  $"use fewer or shorter ones ({MaxRequestTokensVariable})");
            rows.Add(ids);
        }
        return rows;
    }

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";

    /// <summary>
    /// The [RET] vectors of <paramref name="prompts"/> within these limits: tokenized and checked first, then embedded
    /// <see cref="PromptsPerPass"/> at a time, <paramref name="ct"/> checked before every pass (a client that hung up
    /// stops the work at the next pass).
    /// </summary>
    public IReadOnlyList<float[]> EmbedTexts(RsCapRetTileEncoder encoder, IReadOnlyList<string> prompts, CancellationToken ct, string what = "prompt")
    {
        var rows = Tokenize(encoder.Tokenizer, prompts, what);
        var vectors = new List<float[]>(rows.Count);
        using var _ = no_grad();
        for (var start = 0; start < rows.Count; start += PromptsPerPass)
        {
            ct.ThrowIfCancellationRequested();
            using var scope = NewDisposeScope();
            var chunk = rows.Skip(start).Take(PromptsPerPass).ToList();
            var (ids, mask) = TokenBatch.PadRight(chunk);
            var pass = encoder.Model.RetEmbedding(ids, mask).to_type(ScalarType.Float32).cpu();
            for (var i = 0; i < chunk.Count; i++) vectors.Add(pass[i].data<float>().ToArray());
        }
        return vectors;
    }
}

/// <summary>A request asks for more model work than <see cref="ModelWorkLimits"/> allow (the host answers 400).</summary>
public sealed class ModelWorkLimitException(string message) : FormatException(message);
