using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Raster;
using static TorchSharp.torch;

namespace RsCapRet.Queries;

/// <summary>The quadrant test of cell vectors on one dataset split (see <see cref="CellLocalizationEvaluation"/>).</summary>
public sealed record CellLocalizationReport(string Dataset, string Split, int Mosaics, int Classes, int Decisions, int Correct, double MeanMargin,
    int Rows, int Cols, TimeSpan Elapsed)
{
    public double Accuracy => Decisions == 0 ? 0 : (double)Correct / Decisions;

    /// <summary>
    /// Land use at cell resolution against tile resolution (issue 30): every tile and every cell labelled with the
    /// nearest of the split's class labels, the share of the mosaics' pixels whose label is their image's class
    /// (a tile's one label can be right on a quarter of it at most).
    /// </summary>
    public double CellPixelAccuracy { get; init; }
    public double TilePixelAccuracy { get; init; }

    public string Markdown() => string.Create(CultureInfo.InvariantCulture,
        $"""
        ### Where in the tile: quadrant test ({Dataset}, {Split})

        {Mosaics} mosaics of four {Split} images of four different classes (of {Classes}), each image 112 px in one quadrant of a 224 px tile; for each tile and each of its classes, the quadrant whose cells ({Rows}x{Cols}, area-weighted) score highest for the class's label must hold that class.

        | decisions | quadrant accuracy | chance | mean margin (right quadrant − best other) |
        |---:|---:|---:|---:|
        | {Decisions} | {Accuracy:F3} | 0.250 | {MeanMargin:F4} |

        Land use on the same mosaics: every cell (and every tile) labelled with the nearest of the {Classes} class labels; share of the pixels whose label is their image's class (chance {1.0 / Classes:F3}; a tile's single label is right on a quarter of it at most):

        | resolution | pixel accuracy |
        |---|---:|
        | cell ({Rows}x{Cols} per tile) | {CellPixelAccuracy:F3} |
        | tile | {TilePixelAccuracy:F3} |

        {Elapsed.TotalSeconds:F1} s.
        """);
}

/// <summary>
/// Issue 30's evaluation of cell vectors: mosaics of val images where each 224-px tile holds four images of four
/// different scene classes (112 px each, one per quadrant). For each tile and each of its classes the class label's
/// [RET] vector scores every cell; the quadrant with the highest mean cell score (cells straddling the middle count by
/// the share of their area in the quadrant) should hold that class. Chance is 0.25.
/// Classes come from file names: RSICD's "class_N.jpg", or UCM-Captions' numbering (class = (N − 1) / 100).
/// </summary>
public static class CellLocalizationEvaluation
{
    public static IReadOnlyList<string> UcmClasses => SceneClassNames.UcmClasses;

    public static string LabelOf(string className) => SceneClassNames.LabelOf(className);

    /// <summary>The images of a split with their class (images whose class cannot be told are left out).</summary>
    public static IReadOnlyList<(string Path, string Class)> ClassedImages(string datasetDirectory, string split)
    {
        var json = Path.Combine(datasetDirectory, "dataset.json");
        if (!File.Exists(json)) throw new FileNotFoundException($"{json}: dataset description does not exist", json);
        using var doc = JsonDocument.Parse(File.ReadAllText(json));
        var images = doc.RootElement.GetProperty("images").EnumerateArray()
            .Where(im => im.GetProperty("split").GetString() == split)
            .Select(im => (File: im.GetProperty("filename").GetString()!,
                Folder: im.TryGetProperty("filepath", out var fp) && fp.GetString() is { Length: > 0 } f ? f : "images"))
            .ToList();
        var named = SceneClassNames.NamedClass();
        var byName = images.Any(i => named.IsMatch(i.File));
        var result = new List<(string, string)>();
        foreach (var (file, folder) in images)
        {
            string? cls = null;
            if (byName) { if (named.Match(file) is { Success: true } m) cls = m.Groups[1].Value; }
            else if (int.TryParse(Path.GetFileNameWithoutExtension(file), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && (n - 1) / 100 < UcmClasses.Count && n >= 1)
                cls = UcmClasses[(n - 1) / 100];
            if (cls is not null) result.Add((Path.Combine(datasetDirectory, folder, file), cls));
        }
        return result;
    }

    public static CellLocalizationReport Run(RsCapRetTileEncoder encoder, string datasetDirectory, string split, int mosaics, int seed = 30,
        Action<string>? log = null)
    {
        if (mosaics < 1) throw new ArgumentOutOfRangeException(nameof(mosaics), mosaics, "at least one mosaic");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var images = ClassedImages(datasetDirectory, split);
        var byClass = images.GroupBy(i => i.Class).OrderBy(g => g.Key, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.Select(i => i.Path).ToList());
        if (byClass.Count < 4) throw new InvalidDataException($"{datasetDirectory} ({split}): {byClass.Count} classes can be told from the file names; the quadrant test needs four");
        var classes = byClass.Keys.ToList();
        var queries = encoder.EmbedTexts(classes.Select(LabelOf).ToList());
        var size = encoder.InputSize;
        var half = size / 2;
        var quarter = encoder.Preprocessor with { Size = half };
        var random = new Random(seed);
        int decisions = 0, correct = 0, rows = 0, cols = 0;
        double margins = 0, cellPixels = 0, tilePixels = 0;
        const int batch = 16;
        for (var start = 0; start < mosaics; start += batch)
        {
            var plans = new List<int[]>();
            using var scope = NewDisposeScope();
            var tiles = new List<Tensor>();
            for (var m = start; m < Math.Min(mosaics, start + batch); m++)
            {
                // Four classes, one random image of each, in quadrants 0..3 (top-left, top-right, bottom-left, bottom-right).
                var picked = classes.Select((_, i) => i).OrderBy(_ => random.Next()).Take(4).ToArray();
                var parts = picked.Select(c => quarter.Process(RasterImage.ReadRgb(byClass[classes[c]][random.Next(byClass[classes[c]].Count)]))).ToArray();
                tiles.Add(cat([cat([parts[0], parts[1]], 2), cat([parts[2], parts[3]], 2)], 1));
                plans.Add(picked);
            }
            var cells = encoder.EncodeCells(stack(tiles.ToArray()));
            for (var t = 0; t < plans.Count; t++)
            {
                var grid = cells[t];
                (rows, cols) = (grid.Rows, grid.Cols);
                for (var q = 0; q < 4; q++)
                {
                    var means = QuadrantMeans(grid, grid.Scores(queries[plans[t][q]]));
                    var best = Array.IndexOf(means, means.Max());
                    decisions++;
                    if (best == q) correct++;
                    margins += means[q] - means.Where((_, i) => i != q).Max();
                }
                var (cellRight, tileRight) = PixelAccuracy(grid, queries, plans[t]);
                cellPixels += cellRight;
                tilePixels += tileRight;
            }
            log?.Invoke($"{Math.Min(mosaics, start + batch)}/{mosaics} mosaics, quadrant accuracy so far {(double)correct / decisions:F3}");
        }
        return new CellLocalizationReport(Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(datasetDirectory))), split, mosaics,
            classes.Count, decisions, correct, margins / decisions, rows, cols, sw.Elapsed)
        { CellPixelAccuracy = cellPixels / mosaics, TilePixelAccuracy = tilePixels / mosaics };
    }

    /// <summary>
    /// The share of a mosaic tile's pixels labelled right, by its cells and by the tile: each cell (and the tile) takes
    /// the nearest class label; a cell's pixels in quadrant q are right when it took quadrant q's class
    /// (<paramref name="quadrantClasses"/>), by the share of its area there.
    /// </summary>
    public static (double Cells, double Tile) PixelAccuracy(TileCells grid, IReadOnlyList<float[]> classVectors, int[] quadrantClasses)
    {
        static int Nearest(float[] v, IReadOnlyList<float[]> labels)
        {
            var (best, bestScore) = (0, double.NegativeInfinity);
            for (var i = 0; i < labels.Count; i++)
                if (TileCells.Dot(v, labels[i]) is var d && d > bestScore) (best, bestScore) = (i, d);
            return best;
        }
        static double FirstHalf(int i, int n) => Math.Clamp(Math.Min(i + 1.0, n / 2.0) - i, 0, 1);
        double right = 0;
        for (var r = 0; r < grid.Rows; r++)
            for (var c = 0; c < grid.Cols; c++)
            {
                var label = Nearest(grid.At(r, c), classVectors);
                double top = FirstHalf(r, grid.Rows), left = FirstHalf(c, grid.Cols);
                double[] w = [top * left, top * (1 - left), (1 - top) * left, (1 - top) * (1 - left)];
                for (var q = 0; q < 4; q++) if (quadrantClasses[q] == label) right += w[q];
            }
        var tileLabel = Nearest(grid.Tile, classVectors);
        return (right / (grid.Rows * grid.Cols), quadrantClasses.Contains(tileLabel) ? 0.25 : 0);
    }

    /// <summary>Area-weighted mean score of the cells in each quadrant (top-left, top-right, bottom-left, bottom-right).</summary>
    public static double[] QuadrantMeans(TileCells grid, double[] scores)
    {
        // Share of cell i (of n) in the first half of [0, 1).
        static double FirstHalf(int i, int n) => Math.Clamp(Math.Min(i + 1.0, n / 2.0) - i, 0, 1);
        var sums = new double[4];
        var weights = new double[4];
        for (var r = 0; r < grid.Rows; r++)
            for (var c = 0; c < grid.Cols; c++)
            {
                double top = FirstHalf(r, grid.Rows), left = FirstHalf(c, grid.Cols);
                double[] w = [top * left, top * (1 - left), (1 - top) * left, (1 - top) * (1 - left)];
                for (var q = 0; q < 4; q++)
                {
                    sums[q] += w[q] * scores[r * grid.Cols + c];
                    weights[q] += w[q];
                }
            }
        return sums.Select((s, q) => s / weights[q]).ToArray();
    }
}
