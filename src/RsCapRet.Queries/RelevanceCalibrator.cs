using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>A validation image, embedded: its dataset, scene class (null when the file name does not tell) and vectors.</summary>
public sealed record CalibrationImage(string Dataset, string Id, string? Class, float[] Vector, IReadOnlyList<float[]> CaptionVectors);

/// <summary>What <see cref="RelevanceCalibrator.Run"/> produced: relevance.json's text and a report for people.</summary>
public sealed record CalibrationResult(string Json, string Markdown, ReliabilityReport HeldOut, ReliabilityReport HeldOutScoreOnly);

/// <summary>
/// `rscapret calibrate`'s method, on embedded validation images. Every caption of an image is a query; the tiles it
/// is scored against are the images of its own dataset (in the same half); a pair matches when the image shows the
/// caption's scene class (UCM-Captions' numbering, RSICD's file names), or, for an image without a class, when it
/// is the caption's own image. The images of each dataset are split in two halves, class by class (seeded): the
/// calibration is fitted on half A (with a background sample from A) and its reliability measured on half B, whose
/// images and captions it never saw; then it is fitted again on all the images for shipping, and the held-out
/// figures go into relevance.json with it. Class names (e.g. "storage tanks") as queries over half B's images give
/// the precision and recall of relevance ≥ 0.5 per class.
/// </summary>
public static class RelevanceCalibrator
{
    public const int DefaultBackground = 128;

    /// <summary>An image's scene class from its dataset and file name (<see cref="SceneClassNames.ClassOf(string, string)"/>).</summary>
    public static string? ClassOf(string dataset, string fileName) => SceneClassNames.ClassOf(dataset, fileName);

    /// <summary>The words a user would type for a class ("storagetanks" → "storage tanks").</summary>
    public static string LabelOf(string className) => SceneClassNames.LabelOf(className);

    public static CalibrationResult Run(IReadOnlyList<CalibrationImage> images, Func<IReadOnlyList<string>, IReadOnlyList<float[]>> embedTexts,
        ModelIdentity? model, IReadOnlyList<string> datasets, string split, int seed = 29, int backgroundCount = DefaultBackground,
        Action<string>? log = null)
    {
        if (images.Count < 4) throw new ArgumentException("calibration needs at least four images");
        var (halfA, halfB) = Halves(images, seed);
        log?.Invoke($"half A {halfA.Count} images, half B {halfB.Count} images");

        // 1. Fit on A, measure on B.
        var backgroundA = Sample(halfA, backgroundCount, seed);
        var fitPairs = Pairs(halfA, backgroundA);
        var fitA = RelevanceFitting.Fit(fitPairs);
        var fitAScore = RelevanceFitting.Fit(fitPairs, useZ: false);
        var heldPairs = Pairs(halfB, backgroundA);
        var heldOut = RelevanceFitting.Reliability(heldPairs.Select(p => (Predict(fitA, p), p.Positive)).ToList());
        var heldOutScore = RelevanceFitting.Reliability(heldPairs.Select(p => (Predict(fitAScore, p), p.Positive)).ToList());
        log?.Invoke(string.Create(CultureInfo.InvariantCulture, $"held out: ECE {heldOut.Ece:F4} (score alone {heldOutScore.Ece:F4}), log loss {heldOut.LogLoss:F4} ({heldOutScore.LogLoss:F4})"));

        // Class names as queries over half B's images, per dataset.
        var calibrationA = new RelevanceCalibration(fitA.Intercept, fitA.Score, fitA.Z, backgroundA.ToArray());
        var classRows = new List<(string Dataset, string Class, int Images, int Matches, int Flagged, int Correct, double TopRelevance)>();
        foreach (var group in halfB.Where(i => i.Class is not null).GroupBy(i => i.Dataset).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var classes = group.Select(i => i.Class!).Distinct().OrderBy(c => c, StringComparer.Ordinal).ToList();
            var vectors = embedTexts(classes.Select(LabelOf).ToList());
            for (var c = 0; c < classes.Count; c++)
            {
                var of = calibrationA.ForQuery(vectors[c]);
                var scored = group.Select(i => (Relevance: of(1 - TileCells.Dot(i.Vector, vectors[c])), Match: i.Class == classes[c])).ToList();
                classRows.Add((group.Key, classes[c], scored.Count, scored.Count(s => s.Match), scored.Count(s => s.Relevance >= RelevanceCalibration.GoodMatch),
                    scored.Count(s => s.Match && s.Relevance >= RelevanceCalibration.GoodMatch), scored.Max(s => s.Relevance)));
            }
        }

        // 2. Fit on everything for shipping.
        var backgroundAll = Sample(images, backgroundCount, seed);
        var allPairs = Pairs(images, backgroundAll);
        var fitAll = RelevanceFitting.Fit(allPairs);
        var inSample = RelevanceFitting.Reliability(allPairs.Select(p => (Predict(fitAll, p), p.Positive)).ToList());

        var md = Markdown(datasets, split, images, halfA, halfB, fitPairs.Count, heldPairs.Count, fitA, heldOut, heldOutScore, classRows, fitAll, allPairs.Count, inSample, seed, backgroundCount);
        var about = new JsonObject
        {
            ["fitted_on"] = new JsonObject
            {
                ["datasets"] = new JsonArray(datasets.Select(d => (JsonNode)d).ToArray()),
                ["split"] = split,
                ["images"] = images.Count,
                ["pairs"] = allPairs.Count,
                ["matching_pairs"] = allPairs.Count(p => p.Positive),
                ["queries"] = "every caption of every image; tiles: the images of the caption's dataset",
                ["match"] = "the image shows the caption's scene class (UCM-Captions numbering, RSICD file names); its own image where no class is known",
                ["background"] = $"{backgroundAll.Count} images drawn at random (seed {seed}) from those fitted on",
                ["method"] = "logistic regression (maximum likelihood, Newton) on s and z",
                ["seed"] = seed,
                ["date"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-dd", CultureInfo.InvariantCulture),
                ["in_sample"] = ReliabilityJson(inSample),
            },
            ["held_out"] = new JsonObject
            {
                ["how"] = "fitted on half A of each dataset's images (split class by class), measured on half B: other images, other captions",
                ["fit_coefficients"] = new JsonObject { ["intercept"] = Math.Round(fitA.Intercept, 6), ["score"] = Math.Round(fitA.Score, 6), ["z"] = Math.Round(fitA.Z, 6) },
                ["captions"] = ReliabilityJson(heldOut),
                ["captions_score_alone"] = ReliabilityJson(heldOutScore),
                ["class_names"] = new JsonArray(classRows.Select(r => (JsonNode)new JsonObject
                {
                    ["dataset"] = r.Dataset, ["class"] = r.Class, ["query"] = LabelOf(r.Class), ["images"] = r.Images, ["matches"] = r.Matches,
                    ["flagged"] = r.Flagged, ["correct"] = r.Correct,
                    ["precision"] = r.Flagged == 0 ? null : Math.Round((double)r.Correct / r.Flagged, 4),
                    ["recall"] = r.Matches == 0 ? null : Math.Round((double)r.Correct / r.Matches, 4),
                }).ToArray()),
            },
        };
        var json = RelevanceCalibration.ToJson(fitAll.Intercept, fitAll.Score, fitAll.Z, backgroundAll, model, about);
        return new CalibrationResult(json, md, heldOut, heldOutScore);
    }

    private static double Predict((double Intercept, double Score, double Z) fit, RelevanceExample p) =>
        RelevanceCalibration.Sigmoid(fit.Intercept + fit.Score * p.Score + fit.Z * (p.Score - p.Mean) / Math.Max(p.Sd, 1e-6));

    /// <summary>Each dataset's images split in two, class by class, in a seeded random order.</summary>
    public static (IReadOnlyList<CalibrationImage> A, IReadOnlyList<CalibrationImage> B) Halves(IReadOnlyList<CalibrationImage> images, int seed)
    {
        var random = new Random(seed);
        var a = new List<CalibrationImage>();
        var b = new List<CalibrationImage>();
        foreach (var group in images.GroupBy(i => (i.Dataset, i.Class ?? "")).OrderBy(g => g.Key.Dataset, StringComparer.Ordinal).ThenBy(g => g.Key.Item2, StringComparer.Ordinal))
        {
            var shuffled = group.OrderBy(i => i.Id, StringComparer.Ordinal).OrderBy(_ => random.Next()).ToList();
            for (var i = 0; i < shuffled.Count; i++) (i % 2 == 0 ? a : b).Add(shuffled[i]);
        }
        return (a, b);
    }

    private static List<float[]> Sample(IReadOnlyList<CalibrationImage> images, int count, int seed)
    {
        var sample = images.OrderBy(i => i.Id, StringComparer.Ordinal).Select((im, k) => (im, k))
            .OrderBy(x => Hash(seed, x.k)).Take(count).Select(x => x.im.Vector).ToList();
        return sample.Count >= 2 ? sample : throw new ArgumentException("the background needs at least two images");
    }

    private static uint Hash(int seed, int k)
    {
        unchecked
        {
            var h = (uint)seed * 0x9E3779B1u ^ (uint)k * 0x85EBCA77u;
            h ^= h >> 15; h *= 0xC2B2AE3Du; h ^= h >> 13;
            return h;
        }
    }

    /// <summary>Every (caption, image) pair within each dataset of <paramref name="images"/>, with the caption's background statistics.</summary>
    public static List<RelevanceExample> Pairs(IReadOnlyList<CalibrationImage> images, IReadOnlyList<float[]> background)
    {
        var stats = new RelevanceCalibration(0, 0, 1, background.ToArray());
        var pairs = new List<RelevanceExample>();
        foreach (var group in images.GroupBy(i => i.Dataset))
        {
            var tiles = group.ToList();
            foreach (var query in tiles)
                foreach (var caption in query.CaptionVectors)
                {
                    var (mean, sd) = stats.QueryStatistics(caption);
                    foreach (var tile in tiles)
                    {
                        var match = query.Class is null || tile.Class is null ? ReferenceEquals(query, tile) : query.Class == tile.Class;
                        pairs.Add(new RelevanceExample((float)TileCells.Dot(caption, tile.Vector), (float)mean, (float)sd, match));
                    }
                }
        }
        return pairs;
    }

    private static JsonObject ReliabilityJson(ReliabilityReport r) => new()
    {
        ["pairs"] = r.Pairs, ["matching_pairs"] = r.Positives,
        ["ece"] = Math.Round(r.Ece, 5), ["max_bin_error"] = Math.Round(r.MaxBinError, 5), ["brier"] = Math.Round(r.Brier, 5), ["log_loss"] = Math.Round(r.LogLoss, 5),
        ["precision_at_0_5"] = Math.Round(r.Precision, 4), ["recall_at_0_5"] = Math.Round(r.Recall, 4),
        ["bins"] = new JsonArray(r.Bins.Select(b => (JsonNode)new JsonObject
        {
            ["low"] = b.Low, ["high"] = b.High, ["pairs"] = b.Count,
            ["mean_predicted"] = Math.Round(b.MeanPredicted, 4), ["observed"] = Math.Round(b.Observed, 4),
        }).ToArray()),
    };

    private static string Markdown(IReadOnlyList<string> datasets, string split, IReadOnlyList<CalibrationImage> images,
        IReadOnlyList<CalibrationImage> a, IReadOnlyList<CalibrationImage> b, int fitPairs, int heldPairs,
        (double Intercept, double Score, double Z) fitA, ReliabilityReport heldOut, ReliabilityReport heldOutScore,
        List<(string Dataset, string Class, int Images, int Matches, int Flagged, int Correct, double TopRelevance)> classRows,
        (double Intercept, double Score, double Z) fitAll, int allPairs, ReliabilityReport inSample, int seed, int backgroundCount)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine($"# Relevance calibration ({string.Join(", ", datasets)}; split {split})");
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"{images.Count} images; half A {a.Count} (fit: {fitPairs:N0} caption–image pairs), half B {b.Count} (held out: {heldPairs:N0} pairs, {heldOut.Positives:N0} matching); seed {seed}, background {backgroundCount} images."));
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"Fitted on A: p = σ({fitA.Intercept:F3} + {fitA.Score:F3}·s + {fitA.Z:F3}·z)."));
        sb.AppendLine();
        sb.AppendLine("## Held out (half B)");
        sb.AppendLine();
        sb.AppendLine("| model | ECE | largest bin error (bins ≥ 100 pairs) | Brier | log loss | precision of p ≥ 0.5 | recall of p ≥ 0.5 |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- |");
        sb.AppendLine(string.Create(inv, $"| score and z (shipped) | {heldOut.Ece:F4} | {heldOut.MaxBinError:F3} | {heldOut.Brier:F4} | {heldOut.LogLoss:F4} | {heldOut.Precision:F3} | {heldOut.Recall:F3} |"));
        sb.AppendLine(string.Create(inv, $"| score alone | {heldOutScore.Ece:F4} | {heldOutScore.MaxBinError:F3} | {heldOutScore.Brier:F4} | {heldOutScore.LogLoss:F4} | {heldOutScore.Precision:F3} | {heldOutScore.Recall:F3} |"));
        sb.AppendLine();
        sb.AppendLine("Calibration curve (score and z, half B):");
        sb.AppendLine();
        sb.Append(heldOut.MarkdownTable());
        sb.AppendLine();
        sb.AppendLine("## Class names as queries over half B's images (relevance ≥ 0.5)");
        sb.AppendLine();
        sb.AppendLine("| dataset | query | images | of the class | flagged ≥ 0.5 | correct | precision | recall | top relevance |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var r in classRows)
            sb.AppendLine(string.Create(inv, $"| {r.Dataset} | {LabelOf(r.Class)} | {r.Images} | {r.Matches} | {r.Flagged} | {r.Correct} | {(r.Flagged == 0 ? "–" : ((double)r.Correct / r.Flagged).ToString("F2", inv))} | {(r.Matches == 0 ? "–" : ((double)r.Correct / r.Matches).ToString("F2", inv))} | {r.TopRelevance:F2} |"));
        int flagged = classRows.Sum(r => r.Flagged), correct = classRows.Sum(r => r.Correct), matches = classRows.Sum(r => r.Matches);
        sb.AppendLine(string.Create(inv, $"| all | {classRows.Count} queries | | {matches} | {flagged} | {correct} | {(flagged == 0 ? 0 : (double)correct / flagged):F2} | {(matches == 0 ? 0 : (double)correct / matches):F2} | |"));
        sb.AppendLine();
        sb.AppendLine("## Shipped (fitted on all the images)");
        sb.AppendLine();
        sb.AppendLine(string.Create(inv, $"p = σ({fitAll.Intercept:F3} + {fitAll.Score:F3}·s + {fitAll.Z:F3}·z) over {allPairs:N0} pairs; in-sample ECE {inSample.Ece:F4} (not a held-out figure)."));
        return sb.ToString();
    }
}
