using System.Text.Json.Nodes;
using RsCapRet.Model;
using RsCapRet.Queries;

namespace RsCapRet.Queries.Tests;

/// <summary>
/// Issue 34: a yes/no or "which one" answer of the chat takes its verdict from the shared space: the question's
/// vector against the images shown, yes/no by the calibrated relevance; other answers stand as the decoder wrote them.
/// </summary>
public sealed class ChatGroundingTests
{
    private static float[] Unit(params float[] v)
    {
        var n = MathF.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / n).ToArray();
    }

    // cos(query, image): 0.1, 0.8, 0.6 (query = e1; images in the e1/e2 plane).
    private static readonly float[] Query = Unit(1, 0, 0);
    private static readonly List<float[]> Shown = [Unit(0.1f, MathF.Sqrt(0.99f), 0), Unit(0.8f, 0.6f, 0), Unit(0.6f, 0, 0.8f)];

    // Relevance 0.5 at cosine 0.5 (no z term).
    private static readonly RelevanceCalibration Calibration = new(-5, 10, 0, []);

    [Fact]
    public void WhichOneIsTheMostSimilarImageWhateverTheDecoderSaid()
    {
        var g = ChatGrounding.Of("which one shows a beach?", "the first one", Shown, () => Query, null);
        Assert.NotNull(g);
        Assert.Equal(2, g.Image);
        Assert.Equal("the second one", g.Answer);
        Assert.Equal("the first one", g.DecoderAnswer);
        Assert.Equal([0.1, 0.8, 0.6], g.Scores.Select(s => Math.Round(s, 4)));
        Assert.Null(g.Relevance);
        Assert.Null(ChatGrounding.Of("which one shows a beach?", "the first one", Shown.Take(1).ToList(), () => Query, null));   // one image: nothing to choose
    }

    [Fact]
    public void YesNoAsksTheRelevanceOfTheNamedOrLastImage()
    {
        var last = ChatGrounding.Of("is there a beach in it?", "no", Shown, () => Query, Calibration)!;
        Assert.Equal(3, last.Image);
        Assert.Equal(ChatFormat.Yes, last.Answer);   // cosine 0.6: relevance σ(1) ≈ 0.73
        Assert.Equal(0.731, last.Relevance!.Value, 3);

        var first = ChatGrounding.Of("can you see a beach in the first one?", "yes", Shown, () => Query, Calibration)!;
        Assert.Equal(1, first.Image);
        Assert.Equal(ChatFormat.No, first.Answer);   // cosine 0.1: relevance σ(−4)
        Assert.Equal(2, ChatGrounding.Of("does the second one show a beach?", "no", Shown, () => Query, Calibration)!.Image);
        // A position beyond the images shown falls back to the last one.
        Assert.Equal(3, ChatGrounding.Of("does the fifth one show a beach?", "no", Shown, () => Query, Calibration)!.Image);
    }

    [Fact]
    public void AFileThatRecordsItsCountsSaysYesAtItsBaseRate()
    {
        // Fitted on 1,000 pairs of which 33 matched: a question asked at even odds is a match from relevance 0.033.
        var counted = new RelevanceCalibration(-5, 10, 0, []) { Document = JsonNode.Parse("""{"fitted_on": {"pairs": 1000, "matching_pairs": 33}}""")!.AsObject() };
        Assert.Equal(0.033, counted.BaseRate!.Value, 9);
        Assert.Equal(0.033, counted.YesAt, 9);
        Assert.Null(Calibration.BaseRate);
        Assert.Equal(RelevanceCalibration.GoodMatch, Calibration.YesAt);

        // cos 0.3: relevance σ(−2) ≈ 0.12 — "no" at 0.5, "yes" at the base rate; cos 0.1: σ(−4) ≈ 0.018, "no" at both.
        List<float[]> shown = [Unit(0.3f, MathF.Sqrt(0.91f), 0)];
        Assert.Equal(ChatFormat.No, ChatGrounding.Of("any boats here?", "yes", shown, () => Query, Calibration)!.Answer);
        var g = ChatGrounding.Of("any boats here?", "no", shown, () => Query, counted)!;
        Assert.Equal(ChatFormat.Yes, g.Answer);
        Assert.Equal(0.033, g.YesAt!.Value, 9);
        Assert.Equal(ChatFormat.No, ChatGrounding.Of("any boats here?", "yes", Shown.Take(1).ToList(), () => Query, counted)!.Answer);
    }

    [Fact]
    public void OtherAnswersAndMissingPartsLeaveTheDecodersAnswer()
    {
        var asked = 0;
        float[] Counted() { asked++; return Query; }
        Assert.Null(ChatGrounding.Of("is there a beach?", "yes", Shown, Counted, null));               // no calibration
        Assert.Null(ChatGrounding.Of("is there a beach?", "yes", [], Counted, Calibration));           // no image shown
        Assert.Null(ChatGrounding.Of("show me beaches", "here they are", Shown, Counted, Calibration));
        Assert.Null(ChatGrounding.Of("describe it", "many buildings are near a beach", Shown, Counted, Calibration));
        Assert.Equal(0, asked);   // the question is embedded only for a verdict
    }

    [Fact]
    public void AnswersAndQuestionsNamePositionsByWholeOrdinalWords()
    {
        Assert.Equal(3, ChatFormat.WhichPosition("the third one"));
        Assert.Equal(2, ChatFormat.WhichPosition(" The  second one "));
        Assert.Null(ChatFormat.WhichPosition("the first one is a beach"));
        Assert.Null(ChatFormat.WhichPosition("the sixth one"));
        Assert.Equal(2, ChatFormat.OrdinalIn("does the second one show trees?"));
        Assert.Equal(1, ChatFormat.OrdinalIn("what is in the first image, and the third?"));
        Assert.Null(ChatFormat.OrdinalIn("firstly, is there a beach?"));
        Assert.Equal(2, ChatGrounding.YesNoTarget("in the second one?", 3));
        Assert.Equal(3, ChatGrounding.YesNoTarget("is there a beach?", 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => ChatGrounding.YesNoTarget("is there a beach?", 0));
    }
}
