using RsCapRet.Model.Tokenizers;

namespace RsCapRet.Model;

/// <summary>
/// The one chat format the model is trained on and spoken to in (issue 34). A dialogue is a sequence of turns:
/// <list type="bullet">
/// <item>an image: its visual prefix, optionally followed by the model's description in the caption format
/// (<c>BOS caption [RET] EOS</c>, exactly a training caption, so captioning is the one-turn dialogue);</item>
/// <item>a user turn: <c>BOS "q:" text EOS</c>, the text lower-cased as the training captions mostly are;</item>
/// <item>the model's answer: <c>BOS answer EOS</c>, or <c>BOS answer [RET] EOS</c> when it retrieves; the hidden
/// state at that [RET] is the query vector.</item>
/// </list>
/// After a user turn the caller feeds BOS and the model writes the answer; generation stops at EOS or [RET].
/// </summary>
public static class ChatFormat
{
    /// <summary>What starts every user turn, so the model tells the user's words from its own.</summary>
    public const string UserMarker = "q:";

    /// <summary>The answer a retrieval turn is trained to write before its [RET].</summary>
    public const string RetrievalAnswer = "here they are";

    /// <summary>
    /// The retrieval answer that names what it searches for ("here they are: storage tanks"), for a model trained so
    /// (<see cref="RsCapRetConfig.RetrievalAnswerNamesThing"/>): its [RET] then follows the thing's words, as the
    /// search's own query does, and the user reads what the model understood.
    /// </summary>
    public static string RetrievalAnswerNaming(string thing) => $"{RetrievalAnswer}: {thing.Trim()}";

    /// <summary>The answer a "more like this" turn is trained to write before its [RET].</summary>
    public const string SimilarAnswer = "here are similar places";

    /// <summary>Yes/no and "which one" answers, in the words the model is trained to write.</summary>
    public const string Yes = "yes", No = "no";

    /// <summary>"the first one", "the second one", ... for 1-based positions up to <see cref="MaxOrdinal"/>.</summary>
    public static string WhichAnswer(int position) => $"the {Ordinal(position)} one";

    public const int MaxOrdinal = 5;

    public static string Ordinal(int position) => position switch
    {
        1 => "first",
        2 => "second",
        3 => "third",
        4 => "fourth",
        5 => "fifth",
        _ => throw new ArgumentOutOfRangeException(nameof(position), position, $"ordinals are 1..{MaxOrdinal}"),
    };

    /// <summary>The position a "the Nth one" answer names (1-based), or null for any other answer.</summary>
    public static int? WhichPosition(string answer)
    {
        var words = answer.Trim().ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return words is ["the", var ordinal, "one"] ? PositionOf(ordinal) : null;
    }

    /// <summary>The first ordinal word of a user's text ("does the second one show ...?" → 2), or null when it names none.</summary>
    public static int? OrdinalIn(string text) =>
        text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).Select(w => PositionOf(w.Trim('?', '.', ',', '!'))).FirstOrDefault(p => p is not null);

    private static int? PositionOf(string word) =>
        Enumerable.Range(1, MaxOrdinal).Select(p => (int?)p).FirstOrDefault(p => Ordinal(p!.Value) == word);

    /// <summary>The user's words as the model sees them: trimmed, lower-case, spaces collapsed.</summary>
    public static string NormaliseUserText(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var words = text.Trim().ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (words.Length == 0) throw new ArgumentException("The message is empty.", nameof(text));
        return string.Join(' ', words);
    }

    /// <summary>A user turn's tokens: BOS, "q:" and the text, EOS. "[RET]" typed by a user is ordinary text.</summary>
    public static int[] UserTurn(LlamaTextTokenizer tokenizer, string text) =>
        [tokenizer.BosId, .. tokenizer.EncodeSentencePiece($"{UserMarker} {NormaliseUserText(text)}"), tokenizer.EosId];

    /// <summary>
    /// A user turn with its words left out: BOS, "q:", EOS. Training shows it with the turn's reading, so a model that
    /// reads turns learns to answer from the reading (<c>dialogue_turn_word_dropout</c>).
    /// </summary>
    public static int[] UserTurnWithoutWords(LlamaTextTokenizer tokenizer) => [tokenizer.BosId, .. tokenizer.EncodeSentencePiece(UserMarker), tokenizer.EosId];

    /// <summary>An answer's tokens: BOS, the text, [RET] when it retrieves, EOS.</summary>
    public static int[] Answer(LlamaTextTokenizer tokenizer, string text, bool retrieves)
    {
        var ids = new List<int> { tokenizer.BosId };
        ids.AddRange(tokenizer.EncodeSentencePiece(text.Trim()));
        if (retrieves) ids.Add(tokenizer.RetId);
        ids.Add(tokenizer.EosId);
        return [.. ids];
    }

    /// <summary>The model's description after an image, as in training: the caption format (BOS caption [RET] EOS).</summary>
    public static int[] Description(LlamaTextTokenizer tokenizer, string caption) => [.. tokenizer.EncodeCaptionForTraining(caption)];
}
