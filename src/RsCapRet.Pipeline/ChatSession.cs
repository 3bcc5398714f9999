using RsCapRet.Core;
using RsCapRet.Model;
using RsCapRet.Storage;
using static TorchSharp.torch;

namespace RsCapRet.Pipeline;

/// <summary>What the model answered to one turn: its text, and the tiles it retrieved when it emitted [RET].</summary>
public sealed record ChatReply(string Text, bool Retrieved, IReadOnlyList<TileHit> Tiles);

/// <summary>
/// A dialogue over images and text (the paper's Fig. 4): the conversation is one interleaved prompt of images
/// (their visual prefix) and text; the model continues it greedily, and when it emits [RET] the [RET] vector
/// retrieves tiles from the catalogue. The prompt keeps the newest turns that fit the LLM's context.
/// </summary>
public sealed class ChatSession(RsCapRetTileEncoder encoder, Func<float[], int, CancellationToken, Task<IReadOnlyList<TileHit>>>? retrieve, int k = 3)
{
    private readonly List<(PromptSegment Segment, int Tokens)> _history = [];
    public int MaxNewTokens { get; init; } = 40;
    public int Turns => _history.Count;

    public void Reset() => _history.Clear();

    /// <summary>Adds an image to the conversation and returns the model's description of it.</summary>
    public string AddImage(RgbImage image)
    {
        var pixels = encoder.Preprocessor.Process([image]).to(encoder.Model.Device);
        Append(new ImageSegment(pixels), encoder.Model.Heads.PrefixTokens);
        return ContinueWithVector(prefixBos: true).Text;
    }

    /// <summary>A user turn: the text joins the prompt and the model continues it; [RET] in the answer retrieves.</summary>
    public async Task<ChatReply> AskAsync(string text, CancellationToken ct = default)
    {
        if (string.IsNullOrWhiteSpace(text)) throw new ArgumentException("The message is empty.");
        var ids = encoder.Tokenizer.Encode(text.Trim(), addBos: true);
        Append(new TextSegment(ids), ids.Count);
        var (answer, vector) = ContinueWithVector(prefixBos: false);
        if (vector is null || retrieve is null) return new ChatReply(answer, vector is not null, []);
        return new ChatReply(answer, true, await retrieve(vector, k, ct));
    }

    /// <summary>Retrieval on request: the text followed by [RET], as in training (no generation).</summary>
    public async Task<IReadOnlyList<TileHit>> FindAsync(string text, CancellationToken ct = default)
    {
        if (retrieve is null) throw new InvalidOperationException("No catalogue is connected: retrieval is not available.");
        return await retrieve(encoder.EmbedText(text), k, ct);
    }

    /// <summary>Answers are cut to half the context, so a prompt of the other half always has room.</summary>
    private int NewTokens => Math.Max(1, Math.Min(MaxNewTokens, (encoder.Model.Llm.Config.MaxPositionEmbeddings - 2) / 2));
    private int PromptLimit => encoder.Model.Llm.Config.MaxPositionEmbeddings - 2 - NewTokens;

    private void Append(PromptSegment segment, int tokens)
    {
        if (tokens > PromptLimit) throw new ArgumentException($"The message has {tokens} tokens; the model's context leaves room for {PromptLimit}.");
        _history.Add((segment, tokens));
        // Oldest turns leave first so the prompt plus the answer fit the model's positions.
        while (_history.Sum(h => h.Tokens) > PromptLimit) _history.RemoveAt(0);
    }

    private (string Text, float[]? Vector) ContinueWithVector(bool prefixBos)
    {
        var prompt = _history.Select(h => h.Segment).ToList();
        // After an image the model starts its text with BOS, as in training ([prefix] BOS caption [RET] EOS).
        if (prefixBos) prompt.Add(new TextSegment([encoder.Tokenizer.BosId]));
        var reply = encoder.Model.Continue(prompt, NewTokens - (prefixBos ? 1 : 0));
        var ids = reply.TokenIds.Where(t => t != encoder.Model.RetTokenId).ToList();
        var text = RsCapRetTileEncoder.CleanCaption(encoder.Tokenizer.Decode(ids));
        var answerIds = new List<int>();
        if (prefixBos) answerIds.Add(encoder.Tokenizer.BosId);
        answerIds.AddRange(reply.TokenIds);
        if (answerIds.Count > 0) Append(new TextSegment(answerIds), answerIds.Count);
        return (text, reply.RetrievalVector);
    }
}
