using RsCapRet.Model.Checkpoints;
using static TorchSharp.torch;

namespace RsCapRet.Model.Tests;

/// <summary>
/// A BERT sentence encoder pools as its folder's config.json says (mean for all-MiniLM-L6-v2, [CLS] for
/// snowflake-arctic-embed-xs), and the config keeps what sentence-transformers does with queries.
/// </summary>
public sealed class BertPoolingTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("rscapret-bert-pooling-");
    public void Dispose() => _dir.Delete(true);

    private static readonly BertConfig Tiny = new()
    {
        Architecture = "tiny", VocabSize = 40, HiddenSize = 8, NumHiddenLayers = 1, NumAttentionHeads = 2, IntermediateSize = 16, MaxPositionEmbeddings = 16, MaxSeqLength = 16,
    };

    [Theory]
    [InlineData("mean")]
    [InlineData("cls")]
    public void SentenceVectorsArePooledAsTheConfigSaysAndPaddingDoesNotChangeThem(string pooling)
    {
        manual_seed(11);
        using var model = new BertSentenceEncoder(Tiny with { Pooling = pooling });
        model.eval();
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        // Row 0 has 5 real tokens and 2 of padding; row 1 is row 0's real tokens alone.
        var ids = tensor(new long[] { 2, 7, 9, 11, 3, 0, 0 }, [1, 7]);
        var mask = tensor(new long[] { 1, 1, 1, 1, 1, 0, 0 }, [1, 7]);
        var hidden = model.LastHiddenState(ids, mask)[0];
        var expected = pooling == "cls" ? hidden[0] : hidden.narrow(0, 0, 5).mean([0]);
        var padded = model.Pooled(ids, mask)[0];
        Fixtures.AssertClose(padded, nn.functional.normalize(expected, dim: -1), $"{pooling} pooling", 1e-6);
        var unpadded = model.Pooled(ids.narrow(1, 0, 5), mask.narrow(1, 0, 5))[0];
        Fixtures.AssertClose(unpadded, padded, $"{pooling} pooling without padding", 1e-5);
    }

    [Fact]
    public void TheConfigKeepsPoolingAndQueryPrefixAndRejectsOtherPooling()
    {
        var arctic = BertSentenceEncoder.Architectures["snowflake-arctic-embed-xs"];
        Assert.Equal(("cls", 512, true), (arctic.Pooling, arctic.MaxSeqLength, arctic.Normalize));
        Assert.Equal("Represent this sentence for searching relevant passages: ", arctic.QueryPrefix);
        Assert.Null(BertSentenceEncoder.Architectures["all-minilm-l6-v2"].QueryPrefix);

        var withPrefix = Path.Combine(_dir.FullName, "cls");
        using (var model = new BertSentenceEncoder(Tiny with { Pooling = "cls", QueryPrefix = "query: " })) model.SavePretrained(withPrefix);
        var read = BertSentenceEncoder.ReadConfig(Path.Combine(withPrefix, "config.json"));
        Assert.Equal(("cls", "query: "), (read.Pooling, read.QueryPrefix));

        // An encoder without a query prefix writes no key for it (MiniLM's imported config.json stays as it was).
        var without = Path.Combine(_dir.FullName, "mean");
        using (var model = new BertSentenceEncoder(Tiny)) model.SavePretrained(without);
        Assert.DoesNotContain("query_prefix", File.ReadAllText(Path.Combine(without, "config.json")));

        var path = Path.Combine(without, "config.json");
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"mean\"", "\"max\""));
        var e = Assert.Throws<CheckpointException>(() => BertSentenceEncoder.ReadConfig(path));
        Assert.Contains("pooling 'max' is not supported (mean, cls)", e.Message);
        Assert.Contains(path, e.Message);
    }
}
