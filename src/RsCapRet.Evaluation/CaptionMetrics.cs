namespace RsCapRet.Evaluation;

/// <summary>
/// BLEU-1..4, ROUGE_L and CIDEr-D computed exactly as the coco-caption reference code computes them, on
/// PTB-tokenised, space-joined strings (see <see cref="PtbTokenizer"/>).
/// </summary>
public static class CaptionMetrics
{
    private const int N = 4;

    private static Dictionary<string, int> NGrams(string[] words, int maxN = N)
    {
        var counts = new Dictionary<string, int>();
        for (var k = 1; k <= maxN; k++)
            for (var i = 0; i + k <= words.Length; i++)
            {
                var key = string.Join('\u0001', words, i, k) + "\u0002" + k;
                counts[key] = counts.GetValueOrDefault(key) + 1;
            }
        return counts;
    }

    private static int Order(string ngram) => ngram[^1] - '0';

    private static string[] Words(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Corpus BLEU-1..4 and per-image BLEU (coco bleu_scorer, option "closest").</summary>
    public static (double[] Corpus, double[][] PerImage) Bleu(IReadOnlyList<string> candidates, IReadOnlyList<IReadOnlyList<string>> references)
    {
        const double small = 1e-9, tiny = 1e-15;
        var totalGuess = new double[N];
        var totalCorrect = new double[N];
        double totalTest = 0, totalRef = 0;
        var per = new double[candidates.Count][];
        for (var c = 0; c < candidates.Count; c++)
        {
            var maxCounts = new Dictionary<string, int>();
            var refLens = new List<int>();
            foreach (var r in references[c])
            {
                var w = Words(r);
                refLens.Add(w.Length);
                foreach (var (g, n) in NGrams(w)) maxCounts[g] = Math.Max(maxCounts.GetValueOrDefault(g), n);
            }
            var words = Words(candidates[c]);
            var testLen = words.Length;
            var refLen = refLens.Select(l => (Diff: Math.Abs(l - testLen), Len: l)).Min().Len;
            var guess = Enumerable.Range(1, N).Select(k => (double)Math.Max(0, testLen - k + 1)).ToArray();
            var correct = new double[N];
            foreach (var (g, n) in NGrams(words)) correct[Order(g) - 1] += Math.Min(maxCounts.GetValueOrDefault(g), n);
            totalTest += testLen; totalRef += refLen;
            per[c] = new double[N];
            double bleu = 1;
            for (var k = 0; k < N; k++)
            {
                totalGuess[k] += guess[k]; totalCorrect[k] += correct[k];
                bleu *= (correct[k] + tiny) / (guess[k] + small);
                per[c][k] = Math.Pow(bleu, 1.0 / (k + 1));
            }
            var ratio = (testLen + tiny) / (refLen + small);
            if (ratio < 1) for (var k = 0; k < N; k++) per[c][k] *= Math.Exp(1 - 1 / ratio);
        }
        var corpus = new double[N];
        double b = 1;
        for (var k = 0; k < N; k++)
        {
            b *= (totalCorrect[k] + tiny) / (totalGuess[k] + small);
            corpus[k] = Math.Pow(b, 1.0 / (k + 1));
        }
        var r2 = (totalTest + tiny) / (totalRef + small);
        if (r2 < 1) for (var k = 0; k < N; k++) corpus[k] *= Math.Exp(1 - 1 / r2);
        return (corpus, per);
    }

    /// <summary>ROUGE_L per image (LCS F-measure with beta 1.2, best precision and recall over references).</summary>
    public static double[] RougeL(IReadOnlyList<string> candidates, IReadOnlyList<IReadOnlyList<string>> references, double beta = 1.2)
    {
        var scores = new double[candidates.Count];
        for (var c = 0; c < candidates.Count; c++)
        {
            // coco splits on single spaces; an empty candidate is one empty token there.
            var cand = candidates[c].Split(' ');
            double precMax = 0, recMax = 0;
            foreach (var r in references[c])
            {
                var refTokens = r.Split(' ');
                var lcs = Lcs(refTokens, cand);
                precMax = Math.Max(precMax, lcs / (double)cand.Length);
                recMax = Math.Max(recMax, lcs / (double)refTokens.Length);
            }
            scores[c] = precMax != 0 && recMax != 0 ? (1 + beta * beta) * precMax * recMax / (recMax + beta * beta * precMax) : 0;
        }
        return scores;
    }

    private static int Lcs(string[] a, string[] b)
    {
        var dp = new int[a.Length + 1, b.Length + 1];
        for (var i = 1; i <= a.Length; i++)
            for (var j = 1; j <= b.Length; j++)
                dp[i, j] = a[i - 1] == b[j - 1] ? dp[i - 1, j - 1] + 1 : Math.Max(dp[i - 1, j], dp[i, j - 1]);
        return dp[a.Length, b.Length];
    }

    /// <summary>
    /// CIDEr-D per image (pycocoevalcap cider_scorer: tf-idf n-gram vectors with document frequencies from the
    /// references, clipped candidate counts, Gaussian length penalty with sigma 6, mean over n and references, x10).
    /// The "length" in the penalty counts bigrams, as the reference implementation does.
    /// </summary>
    public static double[] Cider(IReadOnlyList<string> candidates, IReadOnlyList<IReadOnlyList<string>> references, double sigma = 6)
    {
        var refCounts = references.Select(refs => refs.Select(r => NGrams(Words(r))).ToList()).ToList();
        var df = new Dictionary<string, int>();
        foreach (var refs in refCounts)
            foreach (var g in refs.SelectMany(r => r.Keys).Distinct()) df[g] = df.GetValueOrDefault(g) + 1;
        var refLen = Math.Log(references.Count);

        (Dictionary<string, double>[] Vec, double[] Norm, int Length) ToVec(Dictionary<string, int> counts)
        {
            var vec = Enumerable.Range(0, N).Select(_ => new Dictionary<string, double>()).ToArray();
            var norm = new double[N];
            var length = 0;
            foreach (var (g, tf) in counts)
            {
                var n = Order(g) - 1;
                var v = tf * (refLen - Math.Log(Math.Max(1.0, df.GetValueOrDefault(g))));
                vec[n][g] = v;
                norm[n] += v * v;
                if (n == 1) length += tf;
            }
            return (vec, norm.Select(Math.Sqrt).ToArray(), length);
        }

        var scores = new double[candidates.Count];
        for (var c = 0; c < candidates.Count; c++)
        {
            var (vh, nh, lh) = ToVec(NGrams(Words(candidates[c])));
            var score = new double[N];
            foreach (var r in refCounts[c])
            {
                var (vr, nr, lr) = ToVec(r);
                double delta = lh - lr;
                for (var n = 0; n < N; n++)
                {
                    double val = 0;
                    foreach (var (g, v) in vh[n]) val += Math.Min(v, vr[n].GetValueOrDefault(g)) * vr[n].GetValueOrDefault(g);
                    if (nh[n] != 0 && nr[n] != 0) val /= nh[n] * nr[n];
                    score[n] += val * Math.Exp(-(delta * delta) / (2 * sigma * sigma));
                }
            }
            scores[c] = score.Average() / refCounts[c].Count * 10.0;
        }
        return scores;
    }
}
