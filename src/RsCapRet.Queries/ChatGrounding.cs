using RsCapRet.Inference;
using RsCapRet.Model;

namespace RsCapRet.Queries;

/// <summary>
/// Issue 34: how a yes/no or "which one" answer of the chat got its verdict from the shared space the search ranks in.
/// The decoder writes the answer's kind ("yes"/"no", "the Nth one") well but, with one visual prefix token and four
/// layers, not its verdict (chance in the dialogue evaluation); the [RET] vector of the user's words against the
/// images' vectors is the model's own, measured grounding of text in images. Holds the decoder's own words, the image
/// the verdict is about (1-based among the images shown last), the cosine of the question's vector with each image
/// shown, and for yes/no the calibrated relevance that decided it and the relevance at which it says yes.
/// </summary>
public sealed record ChatGrounding(string DecoderAnswer, int Image, IReadOnlyList<double> Scores, double? Relevance, double? YesAt = null)
{
    /// <summary>The answer the verdict gives: "the Nth one", or yes/no by the relevance.</summary>
    public string Answer => Relevance is { } r ? (r >= YesAt ? ChatFormat.Yes : ChatFormat.No) : ChatFormat.WhichAnswer(Image);

    /// <summary>
    /// The shared space's verdict when the decoder answered yes/no (with a calibration, about the image the question
    /// names or the last shown) or "the Nth one" (over two or more images shown), else null: the answer stands as the
    /// decoder wrote it. <paramref name="query"/> gives the [RET] vector of the user's words (called only when needed).
    /// </summary>
    public static ChatGrounding? Of(string question, string decoderAnswer, IReadOnlyList<float[]> shown, Func<float[]> query, RelevanceCalibration? calibration)
    {
        var yesNo = decoderAnswer is ChatFormat.Yes or ChatFormat.No;
        if (yesNo ? shown.Count == 0 || calibration is null : ChatFormat.WhichPosition(decoderAnswer) is null || shown.Count < 2) return null;
        var q = query();
        var scores = shown.Select(v => TileCells.Dot(q, v)).ToList();
        if (!yesNo) return new ChatGrounding(decoderAnswer, scores.IndexOf(scores.Max()) + 1, scores, null);   // the first on ties
        var image = YesNoTarget(question, shown.Count);
        return new ChatGrounding(decoderAnswer, image, scores, calibration!.ForQuery(q)(1 - scores[image - 1]), calibration.YesAt);
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
}
