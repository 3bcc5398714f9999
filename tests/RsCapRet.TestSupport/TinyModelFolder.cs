using RsCapRet.Core;
using RsCapRet.Model;
using static TorchSharp.torch;

namespace RsCapRet.TestSupport;

/// <summary>
/// A complete RS-CapRet model folder built from the tiny parity backbones (../shared/fixtures/parity/tiny-a),
/// the committed tiny test tokenizer and freshly initialised heads: the real loading and inference code path at
/// test speed. Its outputs are meaningless; tests use it for plumbing, not quality.
/// </summary>
public static class TinyModelFolder
{
    /// <param name="turnEncoder">A sentence encoder folder: the model then reads user turns, through a random (not zero) turn_reading.</param>
    public static string Create(string directory, int sharedDim = 256, int seed = 1234, string? turnEncoder = null)
    {
        var fixture = Path.Combine(RepositoryPaths.SharedDirectory(), "fixtures", "parity", "tiny-a");
        Directory.CreateDirectory(directory);
        File.Copy(Path.Combine(RepositoryPaths.FindRoot(), "tests", "data", "ucm-bpe-319.model"), Path.Combine(directory, "tokenizer.model"), true);
        var config = new RsCapRetConfig
        {
            Name = "tiny-test", Version = "1",
            Llm = Path.Combine(fixture, "llama"), Vision = Path.Combine(fixture, "clip-vision"),
            SharedDim = sharedDim, RetTokenId = 319, VisualPrefixTokens = 1, Dialogue = turnEncoder is not null, TurnEncoder = turnEncoder,
        };
        manual_seed(seed);
        using var llm = LlamaForCausalLM.FromPretrained(config.Llm);
        using var vision = ClipVisionModel.FromPretrained(config.Vision);
        using var reader = turnEncoder is null ? null : BertSentenceEncoder.FromPretrained(turnEncoder);
        using var heads = new RsCapRetHeads(vision.Config.HiddenSize, llm.Config.HiddenSize, 1, sharedDim, reader?.HiddenSize ?? 0);
        using (no_grad())
            foreach (var (name, p) in heads.named_parameters().Where(p => p.name.StartsWith("turn_reading.", StringComparison.Ordinal)))
                p.normal_(0, 0.5);
        using var model = new RsCapRetModel(llm, vision, heads, 319, reader);
        model.SaveHeads(directory, config);
        return directory;
    }
}
