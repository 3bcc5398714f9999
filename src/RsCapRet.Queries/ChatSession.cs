using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Model;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// What the model answered to one turn: its text; whether it emitted [RET]; the tiles retrieved then (best first,
/// with the search's calibrated relevance when the model has a calibration, null without a catalogue); and how many of
/// them joined the conversation as images (those whose imagery could be read), so "describe the second one" can refer
/// to them.
/// </summary>
public sealed record ChatReply(string Text, bool Retrieved, RankedHits? Tiles, int ImagesAdded = 0, ChatGrounding? Grounding = null)
{
    public IReadOnlyList<TileHit> Hits => Tiles?.Hits ?? [];
}

/// <summary>
/// A dialogue over images and text (the paper's Fig. 4) in <see cref="ChatFormat"/>, the format the model was trained
/// on: images (their visual prefix, then the model's description), user turns, and the model's answers. The model
/// writes every answer; when it emits [RET] the hidden state there retrieves tiles from the catalogue, and the
/// retrieved tiles join the conversation as images. The prompt keeps the newest turns that fit the LLM's context.
/// When the model answers yes/no or "the Nth one", the verdict comes from the shared space (<see cref="ChatGrounding"/>):
/// the question's [RET] vector against the images shown last (those added since the last text turn, up to five), yes
/// when the search's calibrated relevance reaches <see cref="RelevanceCalibration.YesAt"/>; without a calibration a
/// yes/no stays the decoder's.
/// </summary>
public sealed class ChatSession(RsCapRetTileEncoder encoder, Func<float[], int, CancellationToken, Task<IReadOnlyList<TileHit>>>? retrieve, int k = 3)
{
    private readonly List<(List<PromptSegment> Segments, int Tokens)> _history = [];

    /// <summary>
    /// The model that writes the answers: the folder's chat adapter when it has one, else its model. Search's own
    /// vectors (/find, the grounding's query) stay the folder's model's (<see cref="RsCapRetTileEncoder.EmbedText"/>).
    /// </summary>
    private RsCapRetModel Chat => encoder.ChatModel;
    /// <summary>Shared-space vectors of the images added since the last text turn, in order (what "the second one" refers to).</summary>
    private readonly List<float[]> _shown = [];

    /// <summary>Reads a retrieved tile's imagery (null when it cannot be read), so it can join the conversation.</summary>
    public Func<TileHit, CancellationToken, Task<RgbImage?>>? TileImage { get; init; }

    /// <summary>The model's relevance calibration (search's), or null: retrieved tiles are then listed by score only.</summary>
    public RelevanceCalibration? Calibration { get; init; }

    public int MaxNewTokens { get; init; } = 40;

    /// <summary>
    /// What a user should know before talking: a chat adapter left out and why, what the adapter's evaluation measured,
    /// and that a model trained on captions only does not converse; null when there is nothing to say.
    /// </summary>
    public string? ModelNote => NoteFor(encoder);

    public static string? NoteFor(RsCapRetTileEncoder model)
    {
        List<string> notes = [];
        if (model.ChatAdapterSkipped is { } skipped) notes.Add(skipped);
        if (model.ChatAdapterQuality is { } quality) notes.Add($"the chat adapter v{model.ChatAdapterVersion} answers: {quality}");
        if (!model.DialogueTrained) notes.Add(CaptionOnlyNote);
        return notes.Count == 0 ? null : string.Join("; ", notes);
    }

    // Measured by `evaluate --dialogue` on UCM val (model card, Dialogue): mid-dialogue mR 21.1 against 50.6 direct.
    public const string CaptionOnlyNote =
        "this model was trained on captions only: it describes the images you add, but it was never taught to converse, " +
        "so a question such as \"is there a runway?\" gets a caption fragment, not an answer, and a request such as " +
        "\"show me storage tanks\" retrieves from the words it writes itself, seldom what was asked; to search, use " +
        "/find TEXT (the command line) or the search box (the map page)";

    /// <summary>The conversation as the model is given it: the segments of the turns that fit, oldest first.</summary>
    public IReadOnlyList<PromptSegment> Prompt => [.. _history.SelectMany(h => h.Segments)];

    /// <summary>Turns in the prompt now (an image with its description is one turn).</summary>
    public int Turns => _history.Count;

    public void Reset()
    {
        _history.Clear();
        _shown.Clear();
    }

    /// <summary>Adds an image and returns the model's description of it (its caption, as ingestion writes them).</summary>
    public string AddImage(RgbImage image) => AddImage(image, description: null);

    /// <summary>
    /// Adds an image with <paramref name="description"/> as the model's description of it (replaying a conversation),
    /// or the model's own caption when null; returns the description.
    /// </summary>
    public string AddImage(RgbImage image, string? description)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        var pooled = PooledOf(image);
        int[] ids;
        if (description is null)
        {
            // The model's own caption goes into the prompt as the ids it wrote (decoding and encoding again can differ).
            var room = Math.Max(1, Math.Min(NewTokens, PromptLimit - Chat.Heads.PrefixTokens - 3));   // BOS, [RET], EOS
            var written = Chat.GenerateCaptionsFromPooled(pooled, encoder.Generation with { MaxNewTokens = room })[0];
            description = RsCapRetTileEncoder.CleanCaption(encoder.Tokenizer.Decode(written));
            ids = [encoder.Tokenizer.BosId, .. written, encoder.Tokenizer.RetId, encoder.Tokenizer.EosId];
        }
        else ids = Fitted(ChatFormat.Description(encoder.Tokenizer, description.Length == 0 ? "." : description), 2, PromptLimit - Chat.Heads.PrefixTokens);
        AppendImage(pooled, ids);
        return description;
    }

    /// <summary>Adds an image without a description (as retrieved tiles join the conversation).</summary>
    public void AddBareImage(RgbImage image)
    {
        using var scope = TorchSharp.torch.NewDisposeScope();
        AppendImage(PooledOf(image), description: null);
    }

    /// <summary>The image's pooled backbone vector on the CPU, kept past the caller's dispose scope (the prompt holds it).</summary>
    private TorchSharp.torch.Tensor PooledOf(RgbImage image) =>
        encoder.Model.PooledImage(encoder.Preprocessor.Process([image]).to(encoder.Model.Device)).cpu().MoveToOuterDisposeScope();

    /// <summary>
    /// Appends an image turn (its visual prefix, then its description when given) and records its shared-space vector
    /// as shown: an image right after another continues their run, any other starts a new one.
    /// </summary>
    private void AppendImage(TorchSharp.torch.Tensor pooled, int[]? description)
    {
        var continuesRun = _history.Count > 0 && _history[^1].Segments[0] is PooledImageSegment;   // image turns start with their prefix
        var prefix = Chat.Heads.PrefixTokens;
        if (description is null) Append([new PooledImageSegment(pooled)], prefix);
        else Append([new PooledImageSegment(pooled), new TextSegment(description)], prefix + description.Length);
        if (!continuesRun) _shown.Clear();
        if (_shown.Count == ChatFormat.MaxOrdinal) return;   // answers name positions up to the fifth
        using var vector = encoder.Model.ImageEmbeddingFromPooled(pooled).cpu();
        _shown.Add(vector[0].data<float>().ToArray());
    }

    /// <summary>
    /// Replays an earlier answer of the model (a stateless client sends the conversation back); an answer longer than
    /// the context allows keeps its first tokens.
    /// </summary>
    public void AddAnswer(string text, bool retrieved)
    {
        var ids = Fitted(ChatFormat.Answer(encoder.Tokenizer, text, retrieved), retrieved ? 2 : 1, PromptLimit);
        Append([new TextSegment(ids)], ids.Length);
    }

    /// <summary>
    /// Replays an earlier user turn without answering it (its answer is replayed next); a model that reads turns gets
    /// the turn's reading before its tokens, as in training.
    /// </summary>
    public void AddUserTurn(string text)
    {
        var question = ChatFormat.UserTurn(encoder.Tokenizer, text);
        if (Chat.ReadsTurns)
        {
            // The turn's sentence vector once: the prompt is embedded again at every answer.
            var words = ChatFormat.NormaliseUserText(text);
            Append([new TurnReadingSegment(words, Chat.TurnSentenceVector(words)), new TextSegment(question)], question.Length + 1);
        }
        else Append([new TextSegment(question)], question.Length);
    }

    /// <summary>Keeps BOS, the first tokens and the last <paramref name="tail"/> ([RET] and/or EOS) within <paramref name="limit"/>.</summary>
    private static int[] Fitted(int[] ids, int tail, int limit) =>
        ids.Length <= limit ? ids : [.. ids[..Math.Max(1, limit - tail)], .. ids[^tail..]];

    /// <summary>
    /// A user turn: the text joins the prompt and the model writes the answer. [RET] in the answer retrieves
    /// <c>k</c> tiles, which then join the conversation as images (when <see cref="TileImage"/> can read them).
    /// </summary>
    public async Task<ChatReply> AskAsync(string text, CancellationToken ct = default)
    {
        AddUserTurn(text);
        List<PromptSegment> prompt = [.. Prompt, new TextSegment([encoder.Tokenizer.BosId])];
        var reply = Chat.Continue(prompt, NewTokens);
        var retrieved = reply.RetrievalVector is not null;
        var answerIds = reply.TokenIds.Where(t => t != Chat.RetTokenId && t != encoder.Tokenizer.EosId).ToList();
        var answer = RsCapRetTileEncoder.CleanCaption(encoder.Tokenizer.Decode(answerIds));
        var grounding = retrieved ? null : ChatGrounding.Of(text, answer, _shown, () => encoder.EmbedText(ChatFormat.NormaliseUserText(text)), Calibration);
        if (grounding is not null)
        {
            answer = grounding.Answer;
            answerIds = [.. encoder.Tokenizer.EncodeSentencePiece(answer)];
        }
        var turn = new List<int> { encoder.Tokenizer.BosId };
        turn.AddRange(answerIds);
        if (retrieved) turn.Add(Chat.RetTokenId);
        turn.Add(encoder.Tokenizer.EosId);
        Append([new TextSegment(turn)], turn.Count);
        if (!retrieved || retrieve is null) return new ChatReply(answer, retrieved, null, Grounding: grounding);

        var tiles = await retrieve(reply.RetrievalVector!, k, ct);
        var added = 0;
        if (TileImage is not null)
            foreach (var tile in tiles)
                if (await TileImage(tile, ct) is { } image) { AddBareImage(image); added++; }
        return new ChatReply(answer, true, RankedHits.Score(tiles, reply.RetrievalVector!, Calibration), added);
    }

    /// <summary>Retrieval on request: the text followed by [RET], as search does (no generation).</summary>
    public async Task<IReadOnlyList<TileHit>> FindAsync(string text, CancellationToken ct = default)
    {
        if (retrieve is null) throw new InvalidOperationException("No catalogue is connected: retrieval is not available.");
        return await retrieve(encoder.EmbedText(text), k, ct);
    }

    /// <summary>
    /// Answers are cut to about half the context, so a prompt of the other half always has room, and an answer as
    /// long as that (with BOS and EOS around it) fits the prompt again as a turn.
    /// </summary>
    public int NewTokens => Math.Max(1, Math.Min(MaxNewTokens, (Chat.Llm.Config.MaxPositionEmbeddings - 3) / 2));

    /// <summary>The prompt's room: with the BOS that starts an answer, the answer and the [RET] pass, it fills the context.</summary>
    private int PromptLimit => Chat.Llm.Config.MaxPositionEmbeddings - 1 - NewTokens;

    private void Append(List<PromptSegment> segments, int tokens)
    {
        if (tokens > PromptLimit) throw new ArgumentException($"The message has {tokens} tokens; the model's context leaves room for {PromptLimit}.");
        _history.Add((segments, tokens));
        // Oldest turns leave first so the prompt plus the answer fit the model's positions.
        while (_history.Sum(h => h.Tokens) > PromptLimit) _history.RemoveAt(0);
    }
}
