using RsCapRet.Core;
using RsCapRet.Evaluation;

namespace RsCapRet.Training.Tests;

/// <summary>
/// Issue 31: `evaluate --retrieval hybrid` ranks images as the product's hybrid search ranks tiles
/// (HybridRanking, held equal to the SQL by HybridSearchTests): checked here on small matrices worked by hand.
/// </summary>
public class HybridEvaluationTests
{
    [Fact]
    public void TheFusionOrdersByReciprocalRanksThenDistanceThenId()
    {
        // Vector ranks 1..4 for items 0..3; text ranks: 3 (score 1), 2 (0.5), then 0 and 1 (no match) by distance.
        // Fused (k 60, weight 1): 0 = 1/61 + 1/63 = .032266, 3 = 1/64 + 1/61 = .032018, 2 = 1/63 + 1/62 = .032002,
        // 1 = 1/62 + 1/64 = .031754.
        var order = HybridRanking.Order([0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 1.0], [10, 11, 12, 13]);
        Assert.Equal([0, 3, 2, 1], order);
        // Weight 0, or no text match anywhere: the vector order.
        Assert.Equal([0, 1, 2, 3], HybridRanking.Order([0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.5, 1.0], [10, 11, 12, 13], captionWeight: 0));
        Assert.Equal([0, 1, 2, 3], HybridRanking.Order([0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0], [10, 11, 12, 13]));
        // Only the first `depth` rows take part; the rest follow in vector order.
        Assert.Equal([1, 0, 2, 3], HybridRanking.Order([0.1, 0.2, 0.3, 0.4], [0.0, 1.0, 0.0, 1.0], [10, 11, 12, 13], captionWeight: 5, depth: 2));
        // Equal distances: the id decides.
        Assert.Equal([1, 0], HybridRanking.Order([0.2, 0.2], [0.0, 0.0], [7, 3]));
    }

    [Fact]
    public void HybridRecallMovesTargetsTheTextMatchFavours()
    {
        // Three texts, three images; text t describes image t. The vector side ranks image 0 first for every text;
        // the caption side scores only each text's own image.
        var sim = new float[,] { { 0.9f, 0.5f, 0.4f }, { 0.9f, 0.6f, 0.3f }, { 0.9f, 0.2f, 0.1f } };
        var labels = new[] { 0, 1, 2 };
        var textScores = new double[,] { { 1, 0, 0 }, { 0, 1, 0 }, { 0, 0, 1 } };
        var vector = RetrievalMetrics.TextToImage(sim, labels);
        Assert.Equal(100.0 / 3, vector.R1, 6);
        var noText = ModelEvaluator.HybridTextToImage(sim, [0, 1, 2], textScores, labels, captionWeight: 0);
        Assert.Equal(vector, noText);
        var heavy = ModelEvaluator.HybridTextToImage(sim, [0, 1, 2], textScores, labels, captionWeight: 3);
        Assert.Equal(100.0, heavy.R1, 6);
    }

    [Theory]
    [InlineData("vector", RetrievalMode.Vector)]
    [InlineData(" Hybrid ", RetrievalMode.Hybrid)]
    public void ModesParse(string text, RetrievalMode mode) => Assert.Equal(mode, HybridRanking.ParseMode(text));

    [Fact]
    public void AnUnknownModeNamesTheAcceptedOnes() =>
        Assert.Contains("vector or hybrid", Assert.Throws<FormatException>(() => HybridRanking.ParseMode("bm25")).Message);
}
