using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Evaluation;

namespace RsCapRet.Evaluation.Tests;

public class CaptionMetricsTests
{
    private sealed record Reference(
        Dictionary<string, List<string>> gts, Dictionary<string, List<string>> res,
        Dictionary<string, List<string>> tokenized_gts, Dictionary<string, List<string>> tokenized_res,
        Expected expected);
    private sealed record Expected(Dictionary<string, double> corpus, Dictionary<string, Dictionary<string, double>> per_image);

    private static Reference Load() => JsonSerializer.Deserialize<Reference>(File.ReadAllText(
        Path.Combine(RepositoryPaths.SharedDirectory(), "reference", "caption-metrics", "coco-caption-sample.json")))!;

    [Fact]
    public void PtbTokenisationMatchesCocoCaption()
    {
        var r = Load();
        foreach (var (id, refs) in r.gts)
            Assert.Equal(r.tokenized_gts[id], refs.Select(PtbTokenizer.Tokenize).ToList());
        foreach (var (id, cands) in r.res)
            Assert.Equal(r.tokenized_res[id], cands.Select(PtbTokenizer.Tokenize).ToList());
    }

    [Fact]
    public void ScoresMatchTheReferenceEvaluationCode()
    {
        var r = Load();
        var scores = CaptionScorer.Score(r.gts.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)kv.Value), r.res.ToDictionary(kv => kv.Key, kv => kv.Value[0]));
        foreach (var (metric, value) in r.expected.corpus)
            Assert.True(Math.Abs(scores.Corpus[metric] - value) < 1e-9, $"corpus {metric}: {scores.Corpus[metric]:R} vs reference {value:R}");
        foreach (var (id, metrics) in r.expected.per_image)
            foreach (var (metric, value) in metrics)
                Assert.True(Math.Abs(scores.PerImage[id][metric] - value) < 1e-9, $"{id} {metric}: {scores.PerImage[id][metric]:R} vs reference {value:R}");
        Assert.Contains(scores.NotAvailable, n => n.StartsWith("METEOR"));
        Assert.Contains(scores.NotAvailable, n => n.StartsWith("SPICE"));
        Assert.False(scores.Corpus.ContainsKey("METEOR"));
    }

    [Theory]
    [InlineData("Don't park (here), it's the airport's apron!", "do n't park -lrb- here -rrb- it 's the airport 's apron")]
    [InlineData("A well-known 3.5 km runway; 2 planes...", "a well-known 3.5 km runway 2 planes")]
    [InlineData("  Trees\tand \"houses\" ", "trees and houses")]
    public void PtbRulesForCommonCaptionShapes(string raw, string expected) => Assert.Equal(expected, PtbTokenizer.Tokenize(raw));

    [Fact]
    public void FilesWithMissingIdsOrEmptyCandidatesAreClearErrors()
    {
        var dir = Directory.CreateTempSubdirectory("rscapret-score-");
        try
        {
            var refs = Path.Combine(dir.FullName, "R.json");
            var cands = Path.Combine(dir.FullName, "C.json");
            File.WriteAllText(refs, "{\"a\": [\"a farm\"], \"b\": [\"a port\"]}");
            File.WriteAllText(cands, "{\"a\": \"a farm\"}");
            var ex = Assert.Throws<ArgumentException>(() => CaptionScorer.ScoreFiles(refs, cands));
            Assert.Contains("No candidate for image ids: b", ex.Message);
            Assert.Contains(refs, ex.Message);
            File.WriteAllText(cands, "{\"a\": \"a farm\", \"b\": \" \"}");
            Assert.Contains("Empty candidate caption for image ids: b", Assert.Throws<ArgumentException>(() => CaptionScorer.ScoreFiles(refs, cands)).Message);
            File.WriteAllText(cands, "{\"a\": \"a farm\", \"b\": \"x\", \"c\": \"y\"}");
            Assert.Contains("No references for image ids: c", Assert.Throws<ArgumentException>(() => CaptionScorer.ScoreFiles(refs, cands)).Message);
            File.WriteAllText(cands, "[1, 2]");
            Assert.Contains(cands, Assert.Throws<FormatException>(() => CaptionScorer.ScoreFiles(refs, cands)).Message);

        }
        finally { dir.Delete(true); }
    }
}
