using RsCapRet.Model;
using static TorchSharp.torch;

namespace RsCapRet.TestSupport;

/// <summary>
/// A tiny BERT sentence encoder folder (random weights; config.json, model.safetensors, vocab.txt) whose vocabulary
/// holds the given words: for tests of plumbing (frozen text sides, turn readings), not of quality.
/// </summary>
public static class TinyTextEncoder
{
    public static readonly string[] SpecialTokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];

    public static string Save(string directory, IEnumerable<string> words, string pooling = "mean", int layers = 1, int seed = 3)
    {
        var config = new BertConfig
        {
            Architecture = "tiny", VocabSize = 0, HiddenSize = 24, NumHiddenLayers = layers, NumAttentionHeads = 2, IntermediateSize = 32,
            MaxPositionEmbeddings = 64, MaxSeqLength = 64, Pooling = pooling,
        };
        var vocab = SpecialTokens.Concat(words.Select(w => w.ToLowerInvariant()).Except(SpecialTokens).Distinct().Order(StringComparer.Ordinal)).ToList();
        manual_seed(seed);
        using var bert = new BertSentenceEncoder(config with { VocabSize = vocab.Count });
        bert.SavePretrained(directory);
        File.WriteAllLines(Path.Combine(directory, "vocab.txt"), vocab);
        return directory;
    }
}
