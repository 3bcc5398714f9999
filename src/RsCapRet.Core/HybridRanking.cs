namespace RsCapRet.Core;

/// <summary>How a text search ranks tiles: by the [RET] vector alone, or fused with a caption text match.</summary>
public enum RetrievalMode
{
    /// <summary>Cosine distance between the query's [RET] vector and the tiles' image vectors.</summary>
    Vector,
    /// <summary>The vector ranking's first rows re-ranked by reciprocal rank fusion with a caption text match.</summary>
    Hybrid,
}

/// <summary>
/// Reciprocal rank fusion of the vector ranking with the caption text match — the C# twin of
/// rscapret_search_hybrid_page (migrations/0023), used where there is no catalogue (evaluate) and by the test that
/// holds the two equal. Ranks are 1-based: the vector side by (distance, id), the text side by (text score
/// descending, distance, id); fused = 1/(rrfK + vector rank) + captionWeight/(rrfK + text rank), ordered by fused
/// score descending, then distance, then id. Only the vector side's first <c>depth</c> items take part; the rest
/// follow in vector order.
/// </summary>
public static class HybridRanking
{
    /// <summary>Product defaults. The mode was chosen on the val splits (models/default/MODEL_CARD.md, issue 31).</summary>
    public const RetrievalMode DefaultMode = RetrievalMode.Vector;
    public const double DefaultCaptionWeight = 1.0;
    public const int DefaultRrfK = 60;
    public const int DefaultDepth = 200;

    public static string Name(RetrievalMode mode, double captionWeight = DefaultCaptionWeight) => mode switch
    {
        RetrievalMode.Vector => "vector ([RET] cosine)",
        _ => FormattableString.Invariant($"hybrid ([RET] cosine fused with a caption text match, RRF k {DefaultRrfK}, caption weight {captionWeight:0.###})"),
    };

    /// <summary>Parses "vector" or "hybrid" (case-insensitive); a clear error naming the accepted values otherwise.</summary>
    public static RetrievalMode ParseMode(string text) => text.Trim().ToLowerInvariant() switch
    {
        "vector" => RetrievalMode.Vector,
        "hybrid" => RetrievalMode.Hybrid,
        _ => throw new FormatException($"mode must be vector or hybrid, got '{text}'"),
    };

    /// <summary>
    /// The fused order of items with these distances (vector side, smaller is nearer), text scores (larger is
    /// better) and ids: the item indices, best first.
    /// </summary>
    public static int[] Order(IReadOnlyList<double> distances, IReadOnlyList<double> textScores, IReadOnlyList<long> ids,
        double captionWeight = DefaultCaptionWeight, int rrfK = DefaultRrfK, int depth = DefaultDepth)
    {
        var n = distances.Count;
        if (textScores.Count != n || ids.Count != n) throw new ArgumentException("distances, text scores and ids differ in length");
        var byVector = Enumerable.Range(0, n).OrderBy(i => distances[i]).ThenBy(i => ids[i]).ToArray();
        var head = byVector.Take(depth).ToArray();
        var vectorRank = new int[n];
        for (var r = 0; r < head.Length; r++) vectorRank[head[r]] = r + 1;
        var byText = head.OrderByDescending(i => textScores[i]).ThenBy(i => distances[i]).ThenBy(i => ids[i]).ToArray();
        var fused = new double[n];
        for (var r = 0; r < byText.Length; r++)
        {
            var i = byText[r];
            fused[i] = 1.0 / (rrfK + vectorRank[i]) + captionWeight / (rrfK + (r + 1));
        }
        var order = head.OrderByDescending(i => fused[i]).ThenBy(i => distances[i]).ThenBy(i => ids[i]);
        return [.. order, .. byVector.Skip(depth)];
    }
}
