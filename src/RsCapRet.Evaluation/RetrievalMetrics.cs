namespace RsCapRet.Evaluation;

/// <summary>Recall@1/5/10 and their mean (mR), in percent, for one retrieval direction.</summary>
public sealed record RecallAtK(double R1, double R5, double R10)
{
    public double Mean => (R1 + R5 + R10) / 3;
    public override string ToString() => FormattableString.Invariant($"R@1 {R1:F2}  R@5 {R5:F2}  R@10 {R10:F2}  mR {Mean:F2}");

    /// <summary>Recall averaged over datasets (each ranked among its own images), as a multi-dataset run reports it.</summary>
    public static RecallAtK Average(IReadOnlyList<RecallAtK> r) => new(r.Average(x => x.R1), r.Average(x => x.R5), r.Average(x => x.R10));
}

/// <summary>
/// Retrieval metrics from a text x image similarity matrix where text t describes image textToImage[t]
/// (each image usually has several texts). Text->image: the rank of the text's image among all images.
/// Image->text: a hit when any of the image's texts ranks within K among all texts.
/// </summary>
public static class RetrievalMetrics
{
    public static RecallAtK TextToImage(float[,] similarity, IReadOnlyList<int> textToImage)
    {
        int texts = similarity.GetLength(0), images = similarity.GetLength(1);
        Check(texts, images, textToImage);
        var ranks = new int[texts];
        for (var t = 0; t < texts; t++)
        {
            var target = similarity[t, textToImage[t]];
            var better = 0;
            for (var i = 0; i < images; i++) if (similarity[t, i] > target) better++;
            ranks[t] = better;   // 0-based rank; ties resolve in the target's favour
        }
        return FromRanks(ranks);
    }

    public static RecallAtK ImageToText(float[,] similarity, IReadOnlyList<int> textToImage)
    {
        int texts = similarity.GetLength(0), images = similarity.GetLength(1);
        Check(texts, images, textToImage);
        var ranks = new int[images];
        for (var i = 0; i < images; i++)
        {
            var best = int.MaxValue;
            for (var t = 0; t < texts; t++)
            {
                if (textToImage[t] != i) continue;
                var better = 0;
                for (var u = 0; u < texts; u++) if (similarity[u, i] > similarity[t, i]) better++;
                best = Math.Min(best, better);
            }
            if (best == int.MaxValue) throw new ArgumentException($"Image {i} has no text.");
            ranks[i] = best;
        }
        return FromRanks(ranks);
    }

    /// <summary>Recall from 0-based ranks of each query's target.</summary>
    public static RecallAtK FromRanks(IReadOnlyList<int> ranks) =>
        new(100.0 * ranks.Count(r => r < 1) / ranks.Count, 100.0 * ranks.Count(r => r < 5) / ranks.Count, 100.0 * ranks.Count(r => r < 10) / ranks.Count);

    private static void Check(int texts, int images, IReadOnlyList<int> textToImage)
    {
        if (textToImage.Count != texts) throw new ArgumentException($"{textToImage.Count} text->image labels for {texts} texts.");
        if (textToImage.Any(i => i < 0 || i >= images)) throw new ArgumentException("A text->image label is outside the image range.");
    }
}
