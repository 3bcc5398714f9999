namespace RsCapRet.Model;

/// <summary>
/// Issue 34: the verdict of a yes/no or "which one" answer taken from the shared space the model retrieves in. The
/// decoder writes the answer's kind ("yes"/"no", "the Nth one") well but, with one visual prefix token and four
/// layers, not its verdict (chance in the dialogue evaluation); the [RET] vector of the user's words against the
/// images' vectors is the model's own, measured grounding of text in images. The caller turns a similarity into
/// yes/no with the search's calibrated relevance.
/// </summary>
public static class GroundedAnswers
{
    /// <summary>The 1-based position of the image most similar to <paramref name="query"/> (unit vectors; the first on ties).</summary>
    public static int MostSimilar(float[] query, IReadOnlyList<float[]> images)
    {
        if (images.Count == 0) throw new ArgumentException("no images to choose from", nameof(images));
        var best = 0;
        var bestScore = float.NegativeInfinity;
        for (var i = 0; i < images.Count; i++)
        {
            var s = Similarity(query, images[i]);
            if (s > bestScore) (best, bestScore) = (i, s);
        }
        return best + 1;
    }

    /// <summary>
    /// The image a yes/no question is about, 1-based: the position its words name ("in the second one") when the
    /// conversation shows that many, else the last image shown.
    /// </summary>
    public static int YesNoTarget(string question, int shown)
    {
        if (shown < 1) throw new ArgumentOutOfRangeException(nameof(shown), shown, "no image is shown");
        return ChatFormat.OrdinalIn(question) is { } p && p <= shown ? p : shown;
    }

    /// <summary>The cosine of two unit vectors.</summary>
    public static float Similarity(float[] a, float[] b)
    {
        if (a.Length != b.Length) throw new ArgumentException($"vectors of {a.Length} and {b.Length} dimensions");
        var s = 0f;
        for (var i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }
}
