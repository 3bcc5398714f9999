using Microsoft.ML.Tokenizers;

namespace RsCapRet.Model.Tokenizers;

/// <summary>
/// The Llama SentencePiece tokenizer (through Microsoft.ML.Tokenizers) plus RS-CapRet's [RET] token, whose id
/// comes after the SentencePiece vocabulary (or, for checkpoints that already hold it, the id the model says).
/// </summary>
/// <remarks>
/// [RET] behaves like a Hugging Face added token: the literal text "[RET]" is split out before SentencePiece
/// runs, each remaining chunk is encoded on its own (with SentencePiece's dummy "▁" prefix), and whitespace
/// touching [RET] is dropped, so "a harbour [RET]" and "a harbour[RET]" encode alike.
/// </remarks>
public sealed class LlamaTextTokenizer
{
    public const string RetToken = "[RET]";

    private readonly SentencePieceTokenizer _sp;

    public string Path { get; }
    /// <summary>Number of SentencePiece pieces (32,000 for Llama-2).</summary>
    public int BaseVocabSize { get; }
    public int RetId { get; }
    /// <summary>Rows the LLM embedding needs: the SentencePiece pieces plus [RET].</summary>
    public int VocabSize => Math.Max(BaseVocabSize, RetId + 1);
    public int BosId => _sp.BeginningOfSentenceId;
    public int EosId => _sp.EndOfSentenceId;

    private LlamaTextTokenizer(string path, SentencePieceTokenizer sp, int? retId)
    {
        Path = path;
        _sp = sp;
        BaseVocabSize = sp.Vocabulary.Count;
        RetId = retId ?? BaseVocabSize;
        if (RetId < 0) throw new ArgumentOutOfRangeException(nameof(retId), retId, "[RET] id must not be negative.");
    }

    /// <summary>Loads tokenizer.model; <paramref name="retId"/> defaults to the first id after the vocabulary.</summary>
    public static LlamaTextTokenizer Load(string tokenizerModelPath, int? retId = null)
    {
        if (!File.Exists(tokenizerModelPath)) throw new FileNotFoundException($"{tokenizerModelPath}: tokenizer model does not exist", tokenizerModelPath);
        try
        {
            using var stream = File.OpenRead(tokenizerModelPath);
            return new LlamaTextTokenizer(tokenizerModelPath, LlamaTokenizer.Create(stream, addBeginOfSentence: false, addEndOfSentence: false), retId);
        }
        catch (Exception e) when (e is not FileNotFoundException and not UnauthorizedAccessException and not ArgumentOutOfRangeException)
        {
            throw new InvalidDataException($"{tokenizerModelPath}: not a SentencePiece model: {e.Message}", e);
        }
    }

    /// <summary>
    /// Token ids of <paramref name="text"/>: every literal "[RET]" becomes <see cref="RetId"/>, the text between
    /// goes through SentencePiece.
    /// </summary>
    public IReadOnlyList<int> Encode(string text, bool addBos = true, bool addEos = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>();
        if (addBos) ids.Add(BosId);
        var chunks = text.Split(RetToken);
        for (var i = 0; i < chunks.Length; i++)
        {
            if (i > 0) ids.Add(RetId);
            // Whitespace next to [RET] is dropped (HF added-token stripping); outer ends are kept as SentencePiece sees them.
            var chunk = chunks[i];
            if (i > 0) chunk = chunk.TrimStart();
            if (i < chunks.Length - 1) chunk = chunk.TrimEnd();
            ids.AddRange(EncodeSentencePiece(chunk));
        }
        if (addEos) ids.Add(EosId);
        return ids;
    }

    /// <summary>Plain SentencePiece ids of <paramref name="text"/>: no BOS/EOS, and "[RET]" is ordinary text.</summary>
    public IReadOnlyList<int> EncodeSentencePiece(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Length == 0 ? [] : _sp.EncodeToIds(text);
    }

    /// <summary>SentencePiece pieces of <paramref name="text"/> ("▁There", "&lt;0x09&gt;", ...), "[RET]" as ordinary text.</summary>
    public IReadOnlyList<string> Pieces(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.Length == 0 ? [] : _sp.EncodeToTokens(text, out _).Select(t => t.Value).ToList();
    }

    /// <summary>Text of <paramref name="ids"/>, skipping BOS, EOS, [RET] and ids outside the vocabulary (padding).</summary>
    public string Decode(IEnumerable<int> ids) =>
        _sp.Decode(ids.Where(i => i != BosId && i != EosId && i != RetId && i >= 0 && i < BaseVocabSize)) ?? "";

    /// <summary>A retrieval query: BOS, the text, [RET] (the model reads the [RET] hidden state after the final norm).</summary>
    public IReadOnlyList<int> EncodeForRetrieval(string text) => [.. Encode(TrimEndChecked(text), addBos: true), RetId];

    /// <summary>
    /// A training caption: BOS, caption, [RET], EOS. FROMAGe (and RS-CapRet, built on it) appends [RET] right
    /// after the caption so the caption loss teaches the model to emit it and its hidden state feeds the
    /// contrastive loss. EOS follows [RET] here so the captioner also learns where to stop; generation ends at
    /// either, and <see cref="Decode"/> drops both.
    /// </summary>
    public IReadOnlyList<int> EncodeCaptionForTraining(string caption) => [.. Encode(TrimEndChecked(caption), addBos: true), RetId, EosId];

    // Whitespace before the appended [RET] is dropped, as inside Encode.
    private static string TrimEndChecked(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return text.TrimEnd();
    }
}
