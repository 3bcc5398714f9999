using System.Globalization;
using System.Text;

namespace RsCapRet.Queries;

/// <summary>One (query, tile) pair: the cosine score, the query's background statistics, and whether the tile matches.</summary>
public readonly record struct RelevanceExample(float Score, float Mean, float Sd, bool Positive);

/// <summary>How well predicted probabilities match outcomes, in equal-width bins of the prediction.</summary>
public sealed record ReliabilityBin(double Low, double High, int Count, double MeanPredicted, double Observed);

/// <summary>
/// Reliability of probabilities on labelled pairs: expected calibration error (ECE, the count-weighted mean of
/// |mean predicted − observed| over 10 bins), the largest bin error among bins of at least 100 pairs, Brier score,
/// log loss, and precision / recall of p ≥ 0.5.
/// </summary>
public sealed record ReliabilityReport(int Pairs, int Positives, double Ece, double MaxBinError, double Brier, double LogLoss,
    double Precision, double Recall, IReadOnlyList<ReliabilityBin> Bins)
{
    public string MarkdownTable()
    {
        var sb = new StringBuilder("| predicted relevance | pairs | mean predicted | observed share of matches |\n| --- | --- | --- | --- |\n");
        foreach (var b in Bins.Where(b => b.Count > 0))
            sb.AppendLine(string.Create(CultureInfo.InvariantCulture, $"| {b.Low:F1}–{b.High:F1} | {b.Count:N0} | {b.MeanPredicted:F3} | {b.Observed:F3} |"));
        return sb.ToString();
    }
}

/// <summary>The fitting behind <see cref="RelevanceCalibration"/>: logistic regression by Newton's method, and reliability.</summary>
public static class RelevanceFitting
{
    /// <summary>
    /// Fits p = σ(a + b·s + c·z) by maximum likelihood (Newton–Raphson with a tiny ridge on b and c). With
    /// <paramref name="useZ"/> false, c = 0 (the score alone). A weight that comes out negative (relevance would fall
    /// as the score rises) is dropped and the rest refitted.
    /// </summary>
    public static (double Intercept, double Score, double Z) Fit(IReadOnlyList<RelevanceExample> pairs, bool useZ = true, double ridge = 1e-6)
    {
        if (pairs.Count == 0) throw new ArgumentException("no pairs to fit");
        var positives = pairs.Count(p => p.Positive);
        if (positives == 0 || positives == pairs.Count) throw new ArgumentException("fitting needs both matching and non-matching pairs");
        var (a, b, c) = Newton(pairs, useScore: true, useZ);
        if (c < 0) (a, b, c) = Newton(pairs, useScore: true, useZ: false);
        if (b < 0) (a, b, c) = useZ ? Newton(pairs, useScore: false, useZ: true) : throw new InvalidDataException("the score does not raise the chance of a match on these pairs");
        if (b < 0 || c < 0) throw new InvalidDataException("neither the score nor its z grows with the chance of a match on these pairs");
        return (a, b, c);

        (double, double, double) Newton(IReadOnlyList<RelevanceExample> xs, bool useScore, bool useZ)
        {
            var w = new double[3];
            // Start from the base rate.
            var rate = (double)positives / xs.Count;
            w[0] = Math.Log(rate / (1 - rate));
            for (var iteration = 0; iteration < 100; iteration++)
            {
                var g = new double[3];
                var h = new double[3, 3];
                foreach (var e in xs)
                {
                    var x = Features(e, useScore, useZ);
                    var p = RelevanceCalibration.Sigmoid(w[0] * x[0] + w[1] * x[1] + w[2] * x[2]);
                    var r = p - (e.Positive ? 1 : 0);
                    var v = Math.Max(p * (1 - p), 1e-12);
                    for (var i = 0; i < 3; i++)
                    {
                        g[i] += r * x[i];
                        for (var j = 0; j < 3; j++) h[i, j] += v * x[i] * x[j];
                    }
                }
                for (var i = 1; i < 3; i++) { g[i] += ridge * xs.Count * w[i]; h[i, i] += ridge * xs.Count; }
                // An unused feature keeps weight 0: its row and column are the identity.
                if (!useScore) { g[1] = 0; for (var j = 0; j < 3; j++) h[1, j] = h[j, 1] = 0; h[1, 1] = 1; }
                if (!useZ) { g[2] = 0; for (var j = 0; j < 3; j++) h[2, j] = h[j, 2] = 0; h[2, 2] = 1; }
                var step = Solve3(h, g);
                for (var i = 0; i < 3; i++) w[i] -= step[i];
                if (step.Max(Math.Abs) < 1e-10) break;
            }
            return (w[0], w[1], w[2]);
        }
    }

    private static double[] Features(RelevanceExample e, bool useScore, bool useZ) =>
        [1, useScore ? e.Score : 0, useZ ? (e.Score - e.Mean) / Math.Max(e.Sd, 1e-6) : 0];

    private static double[] Solve3(double[,] m, double[] v)
    {
        double Det(double[,] x) =>
            x[0, 0] * (x[1, 1] * x[2, 2] - x[1, 2] * x[2, 1]) - x[0, 1] * (x[1, 0] * x[2, 2] - x[1, 2] * x[2, 0]) + x[0, 2] * (x[1, 0] * x[2, 1] - x[1, 1] * x[2, 0]);
        var d = Det(m);
        if (Math.Abs(d) < 1e-300) throw new InvalidDataException("the relevance fit is singular (the pairs do not tell the features apart)");
        var result = new double[3];
        for (var col = 0; col < 3; col++)
        {
            var copy = (double[,])m.Clone();
            for (var row = 0; row < 3; row++) copy[row, col] = v[row];
            result[col] = Det(copy) / d;
        }
        return result;
    }

    public static ReliabilityReport Reliability(IReadOnlyList<(double P, bool Positive)> predictions, int bins = 10)
    {
        if (predictions.Count == 0) throw new ArgumentException("no predictions");
        var count = new int[bins];
        var sumP = new double[bins];
        var sumY = new double[bins];
        double brier = 0, logLoss = 0;
        int tp = 0, fp = 0, fn = 0, positives = 0;
        foreach (var (p, y) in predictions)
        {
            var bin = Math.Min(bins - 1, (int)(p * bins));
            count[bin]++; sumP[bin] += p; sumY[bin] += y ? 1 : 0;
            brier += (p - (y ? 1 : 0)) * (p - (y ? 1 : 0));
            var clipped = Math.Clamp(p, 1e-12, 1 - 1e-12);
            logLoss -= y ? Math.Log(clipped) : Math.Log(1 - clipped);
            if (y) positives++;
            if (p >= RelevanceCalibration.GoodMatch) { if (y) tp++; else fp++; }
            else if (y) fn++;
        }
        var n = predictions.Count;
        var list = new List<ReliabilityBin>();
        double ece = 0, max = 0;
        for (var b = 0; b < bins; b++)
        {
            var mp = count[b] == 0 ? 0 : sumP[b] / count[b];
            var ob = count[b] == 0 ? 0 : sumY[b] / count[b];
            list.Add(new ReliabilityBin((double)b / bins, (double)(b + 1) / bins, count[b], mp, ob));
            ece += (double)count[b] / n * Math.Abs(mp - ob);
            if (count[b] >= 100) max = Math.Max(max, Math.Abs(mp - ob));
        }
        return new ReliabilityReport(n, positives, ece, max, brier / n, logLoss / n,
            tp + fp == 0 ? 0 : (double)tp / (tp + fp), tp + fn == 0 ? 0 : (double)tp / (tp + fn), list);
    }
}
