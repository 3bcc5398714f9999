using System.Text.Json;
using System.Text.Json.Nodes;
using NetTopologySuite.Geometries;
using RsCapRet.Queries;
using RsCapRet.Storage;

namespace RsCapRet.Queries.Tests;

/// <summary>Issue 29: relevance (fitting, reliability, the stored calibration, results with and without it) and paging's parsing.</summary>
public class RelevanceTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private static float[] Unit(Random rng, int dim = 8)
    {
        var v = Enumerable.Range(0, dim).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var n = (float)Math.Sqrt(v.Sum(x => x * x));
        return v.Select(x => x / n).ToArray();
    }

    /// <summary>Pairs drawn from a known logistic model: the fit finds its coefficients and is calibrated on fresh draws.</summary>
    private static List<RelevanceExample> Draw(int n, int seed, double a = -4, double b = 6, double c = 0.8)
    {
        var rng = new Random(seed);
        var list = new List<RelevanceExample>(n);
        for (var i = 0; i < n; i++)
        {
            var mean = (float)(rng.NextDouble() * 0.2);
            var sd = (float)(0.05 + rng.NextDouble() * 0.1);
            var s = (float)(rng.NextDouble() * 1.2 - 0.2);
            var p = RelevanceCalibration.Sigmoid(a + b * s + c * (s - mean) / sd);
            list.Add(new RelevanceExample(s, mean, sd, rng.NextDouble() < p));
        }
        return list;
    }

    [Fact]
    public void TheFitRecoversAKnownModelAndIsCalibratedOnFreshPairs()
    {
        var fit = RelevanceFitting.Fit(Draw(60_000, 1));
        Assert.InRange(fit.Intercept, -4.4, -3.6);
        Assert.InRange(fit.Score, 5.3, 6.7);
        Assert.InRange(fit.Z, 0.7, 0.9);
        var fresh = Draw(60_000, 2);
        var report = RelevanceFitting.Reliability(fresh.Select(e =>
            (RelevanceCalibration.Sigmoid(fit.Intercept + fit.Score * e.Score + fit.Z * (e.Score - e.Mean) / e.Sd), e.Positive)).ToList());
        Assert.True(report.Ece < 0.02, $"ECE {report.Ece}");
        Assert.Equal(10, report.Bins.Count);
        Assert.Equal(fresh.Count, report.Bins.Sum(b => b.Count));
    }

    [Fact]
    public void AScoreThatLowersTheChanceIsNotKept()
    {
        // Matches are the low scores here: relevance must not grow with the score, so the fit refuses rather than inverting the ranking.
        var pairs = Draw(5_000, 3, a: 1, b: -6, c: 0).Select(e => e with { Mean = 0, Sd = 1 }).ToList();
        Assert.Throws<InvalidDataException>(() => RelevanceFitting.Fit(pairs));
    }

    [Fact]
    public void ReliabilityOfAMiscalibratedPredictorShowsItsError()
    {
        var xs = Enumerable.Range(0, 1000).Select(i => (0.9, i % 10 == 0)).ToList();   // says 0.9, is right 10 % of the time
        var r = RelevanceFitting.Reliability(xs);
        Assert.Equal(0.8, r.Ece, 6);
        Assert.Equal(0.1, r.Precision, 6);
        Assert.Equal(1.0, r.Recall, 6);
    }

    private static (string Dir, RelevanceCalibration Calibration) WriteCalibration(string? sha = null)
    {
        var rng = new Random(5);
        var background = Enumerable.Range(0, 16).Select(_ => Unit(rng)).ToList();
        var dir = Directory.CreateTempSubdirectory("relevance-").FullName;
        var json = RelevanceCalibration.ToJson(-3, 5, 0.5, background,
            sha is null ? null : new ModelIdentity("m", "1", "llm", "vision", sha), new JsonObject { ["fitted_on"] = new JsonObject { ["split"] = "val" } });
        File.WriteAllText(Path.Combine(dir, RelevanceCalibration.FileName), json);
        return (dir, RelevanceCalibration.Load(dir)!);
    }

    [Fact]
    public void TheStoredCalibrationRoundTripsAndGrowsWithTheScore()
    {
        var (dir, c) = WriteCalibration();
        try
        {
            Assert.Equal((-3.0, 5.0, 0.5), (c.Intercept, c.ScoreWeight, c.ZWeight));
            Assert.Equal(16, c.Background.Length);
            Assert.Equal("val", (string?)c.Document["fitted_on"]?["split"]);
            var of = c.ForQuery(Unit(new Random(9)));
            var relevance = Enumerable.Range(0, 21).Select(i => of(2 - i * 0.1)).ToList();   // distance 2 .. 0: score -1 .. 1
            Assert.Equal(relevance.Order(), relevance);
            Assert.All(relevance, r => Assert.InRange(r, 0, 1));
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void AFolderWithoutCalibrationOrWithAStaleOneGivesNullRelevanceAndANote()
    {
        var empty = Directory.CreateTempSubdirectory("relevance-none-").FullName;
        try
        {
            Assert.Null(RelevanceCalibration.Load(empty));
            var ranked = RankedHits.Score([Hit(1, 0.2)], Unit(new Random(1)), empty);
            Assert.Null(ranked.Relevance[0]);
            Assert.Null(ranked.GoodMatch);
            Assert.Equal(RelevanceCalibration.MissingNote, ranked.Note);
            var table = SearchOutput.Table(ranked);
            Assert.Contains("note: relevance is not available", table);
            using var doc = JsonDocument.Parse(SearchOutput.GeoJson(ranked));
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("features")[0].GetProperty("properties").GetProperty("relevance").ValueKind);
            Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("good_match").ValueKind);
            Assert.Contains("relevance.json", doc.RootElement.GetProperty("relevance_note").GetString());

            File.WriteAllText(Path.Combine(empty, RelevanceCalibration.FileName), "{ \"format\": \"something else\" }");
            var (calibration, note) = RelevanceCalibration.LoadOrExplain(empty);
            Assert.Null(calibration);
            Assert.Contains("not a relevance calibration", note);
        }
        finally { Directory.Delete(empty, true); }
    }

    [Fact]
    public void ACalibrationFittedForOtherWeightsIsNotUsed()
    {
        var (dir, _) = WriteCalibration(sha: new string('a', 64));
        try
        {
            // A model folder (the default's rscapret.json) whose heads are not the ones the calibration records.
            File.Copy(Path.Combine(RsCapRet.Core.RepositoryPaths.FindRoot(), "models", "default", RsCapRet.Model.RsCapRetConfig.FileName),
                Path.Combine(dir, RsCapRet.Model.RsCapRetConfig.FileName));
            File.WriteAllBytes(Path.Combine(dir, "heads.safetensors"), [1, 2, 3]);
            var (calibration, note) = RelevanceCalibration.LoadOrExplain(dir);
            Assert.Null(calibration);
            Assert.Contains("fitted for other weights", note);
            Assert.Null(RankedHits.Score([Hit(1, 0.1)], new float[8], dir).Relevance[0]);
        }
        finally { Directory.Delete(dir, true); }
    }

    private static TileHit Hit(long id, double distance) =>
        new(id, 1, "/scenes/a.tif", 0, (int)id, 0, 0, 224, 224, null, $"tile {id}", distance, null);

    [Fact]
    public void NoGoodMatchIsSaidAndTheNearestAreStillShownMarked()
    {
        var c = new RelevanceCalibration(-20, 1, 0, []);   // nothing ever reaches 0.5
        var ranked = RankedHits.Score([Hit(1, 0.1), Hit(2, 0.2)], new float[256], c, offset: 5);
        Assert.False(ranked.GoodMatch);
        var table = SearchOutput.Table(ranked);
        Assert.StartsWith("no good match", table);
        Assert.Contains("\n  6~ ", table);
        Assert.Contains("\n  7~ ", table);
        using var doc = JsonDocument.Parse(SearchOutput.GeoJson(ranked));
        Assert.False(doc.RootElement.GetProperty("good_match").GetBoolean());
        Assert.Equal(5, doc.RootElement.GetProperty("offset").GetInt32());
        var first = doc.RootElement.GetProperty("features")[0].GetProperty("properties");
        Assert.Equal(6, first.GetProperty("rank").GetInt32());
        Assert.True(first.GetProperty("weak").GetBoolean());
        Assert.InRange(first.GetProperty("relevance").GetDouble(), 0, 0.5);
    }

    [Fact]
    public void MinRelevanceKeepsThePrefixAboveItOrTheNearestMarked()
    {
        var c = new RelevanceCalibration(-5, 10, 0, []);   // score 0.5 ↔ relevance 0.5
        var hits = new[] { Hit(1, 0.2), Hit(2, 0.4), Hit(3, 0.6), Hit(4, 0.9) };
        var ranked = RankedHits.Score(hits, new float[256], c);
        Assert.True(ranked.GoodMatch);
        var kept = ranked.AtLeast(0.5);
        Assert.Equal([1L, 2L], kept.Hits.Select(h => h.TileId));
        Assert.False(kept.BelowMinimum);
        Assert.DoesNotContain("~", SearchOutput.Table(kept));
        var none = ranked.AtLeast(0.999);
        Assert.True(none.BelowMinimum);
        Assert.Equal([1L], none.Hits.Select(h => h.TileId));
        Assert.StartsWith("no good match: no tile reaches relevance 0.999", SearchOutput.Table(none));
        using var doc = JsonDocument.Parse(SearchOutput.GeoJson(none));
        Assert.True(doc.RootElement.GetProperty("below_min_relevance").GetBoolean());
        Assert.Same(ranked, ranked.AtLeast(null));
    }

    [Fact]
    public void OffsetAndMinRelevanceAreParsedAndBounded()
    {
        var q = SearchQuery.Parse("farmland", "5", null, null, null, null, offset: "5", minRelevance: "0.5");
        Assert.Equal((5, 5, 0.5), (q.K, q.Offset, q.MinRelevance!.Value));
        Assert.Equal(0, SearchQuery.Parse("farmland", null, null, null, null, null).Offset);
        Assert.Equal(990, SearchQuery.Parse("x", "10", null, null, null, null, offset: "990").Offset);
        Assert.Contains("offset + k must be at most 1000", Assert.Throws<FormatException>(() => SearchQuery.Parse("x", "10", null, null, null, null, offset: "991")).Message);
        Assert.Throws<FormatException>(() => SearchQuery.Parse("x", null, null, null, null, null, offset: "-1"));
        Assert.Throws<FormatException>(() => SearchQuery.Parse("x", null, null, null, null, null, offset: "two"));
        Assert.Throws<FormatException>(() => SearchQuery.Parse("x", null, null, null, null, null, minRelevance: "1.5"));
        Assert.Equal(1000, SearchQuery.Parse("x", "1000", null, null, null, null).K);
    }

    [Fact]
    public void RelevanceAddsMicrosecondsToASearch()
    {
        // What relevance adds to a search of k = 10 with the shipped calibration (128 background vectors, 256-d): the
        // query's background statistics and ten sigmoids; the search itself is about a millisecond (docs/benchmarks.md).
        var c = RelevanceCalibration.Load(Path.Combine(RsCapRet.Core.RepositoryPaths.FindRoot(), "models", "default"))!;
        var rng = new Random(3);
        var queries = Enumerable.Range(0, 200).Select(_ => Unit(rng, 256)).ToList();
        var hits = Enumerable.Range(0, 10).Select(i => Hit(i + 1, 0.5 + i * 0.01)).ToList();
        foreach (var q in queries.Take(20)) RankedHits.Score(hits, q, c);   // warm
        var times = new List<double>();
        foreach (var q in queries)
        {
            var started = System.Diagnostics.Stopwatch.GetTimestamp();
            RankedHits.Score(hits, q, c);
            times.Add(System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMicroseconds);
        }
        times.Sort();
        output.WriteLine($"relevance of 10 hits: p50 {times[times.Count / 2]:F1} µs, p95 {times[(int)(times.Count * 0.95)]:F1} µs");
        Assert.True(times[times.Count / 2] < 2000, $"p50 {times[times.Count / 2]} µs");
    }

    [Fact]
    public void TheShippedModelHasACalibrationFittedOnValidationDataWithHeldOutFigures()
    {
        var dir = Path.Combine(RsCapRet.Core.RepositoryPaths.FindRoot(), "models", "default");
        var c = RelevanceCalibration.Load(dir)!;
        Assert.NotNull(c);
        Assert.Equal("val", (string?)c.Document["fitted_on"]?["split"]);
        var held = c.Document["held_out"]!["captions"]!;
        Assert.InRange((double)held["ece"]!, 0, 0.05);
        Assert.Equal(10, held["bins"]!.AsArray().Count);
        Assert.True(c.ScoreWeight > 0);
    }
}
