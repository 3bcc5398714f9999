using Microsoft.ML.Tokenizers;

namespace RsCapRet.Model.Tokenizers;

/// <summary>
/// The Llama SentencePiece tokenizer (through Microsoft.ML.Tokenizers) plus RS-CapRet's [RET] token, whose id
/// comes after the SentencePiece vocabulary (or, for checkpoints that already hold it, the id the model says).
/// </summary>
public sealed class LlamaTextTokenizer
{
    public const string RetToken = "[RET]";

    private readonly SentencePieceTokenizer _sp;

    public string Path { get; }
    public int BaseVocabSize { get; }
    public int RetId { get; }
    public int VocabSize => Math.Max(BaseVocabSize, RetId + 1);
    public int BosId => _sp.BeginningOfSentenceId;
    public int EosId => _sp.EndOfSentenceId;

    private LlamaTextTokenizer(string path, SentencePieceTokenizer sp, int? retId)
    {
        Path = path;
        _sp = sp;
        BaseVocabSize = sp.Vocabulary.Count;
        RetId = retId ?? BaseVocabSize;
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
        catch (Exception e) when (e is not FileNotFoundException and not UnauthorizedAccessException)
        {
            throw new InvalidDataException($"{tokenizerModelPath}: not a SentencePiece model: {e.Message}", e);
        }
    }

    /// <summary>SentencePiece ids of <paramref name="text"/> (the literal text "[RET]" is ordinary text here).</summary>
    public IReadOnlyList<int> Encode(string text, bool addBos = false, bool addEos = false)
    {
        var ids = new List<int>();
        if (addBos) ids.Add(BosId);
        if (text.Length > 0) ids.AddRange(_sp.EncodeToIds(text));
        if (addEos) ids.Add(EosId);
        return ids;
    }

    public IReadOnlyList<string> Pieces(string text) => _sp.EncodeToTokens(text, out _).Select(t => t.Value).ToList();

    /// <summary>Text of <paramref name="ids"/>, skipping BOS, EOS and [RET].</summary>
    public string Decode(IEnumerable<int> ids) =>
        _sp.Decode(ids.Where(i => i != BosId && i != EosId && i != RetId && i >= 0 && i < BaseVocabSize)) ?? "";

    /// <summary>A retrieval query: BOS, the text, [RET] (the model reads the [RET] hidden state).</summary>
    public IReadOnlyList<int> EncodeForRetrieval(string text) => [.. Encode(text, addBos: true), RetId];

    /// <summary>
    /// A training caption as RS-CapRet/FROMAGe use it: BOS, caption, [RET], EOS. The caption loss covers the
    /// caption, [RET] and EOS; the [RET] hidden state feeds the contrastive loss.
    /// </summary>
    public IReadOnlyList<int> EncodeCaptionForTraining(string caption) => [.. Encode(caption, addBos: true), RetId, EosId];
}
