using RsCapRet.Evaluation;

namespace RsCapRet.Evaluation.Tests;

public class RetrievalMetricsTests
{
    [Fact]
    public void HandComputedRecalls()
    {
        // 4 texts, 2 images; texts 0,1 describe image 0, texts 2,3 describe image 1.
        var sim = new float[,] { { 0.9f, 0.1f }, { 0.2f, 0.8f }, { 0.3f, 0.7f }, { 0.6f, 0.5f } };
        int[] labels = [0, 0, 1, 1];
        var t2i = RetrievalMetrics.TextToImage(sim, labels);
        Assert.Equal(50.0, t2i.R1);     // texts 0 and 2 rank their image first
        Assert.Equal(100.0, t2i.R5);
        var i2t = RetrievalMetrics.ImageToText(sim, labels);
        // image 0: column [0.9,0.2,0.3,0.6] -> text 0 ranks first: hit at 1. image 1: [0.1,0.8,0.7,0.5] -> best own text (2) ranks 2nd.
        Assert.Equal(50.0, i2t.R1);
        Assert.Equal(100.0, i2t.R5);
        Assert.Equal((50.0 + 100 + 100) / 3, i2t.Mean, 9);
    }

    [Fact]
    public void LabelsMustFitTheMatrix()
    {
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.TextToImage(new float[2, 2], [0]));
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.TextToImage(new float[2, 2], [0, 5]));
    }
}
