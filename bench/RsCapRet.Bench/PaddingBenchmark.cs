using System.Globalization;
using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Inference;
using RsCapRet.Raster;
using static TorchSharp.torch;

namespace RsCapRet.Bench;

/// <summary>
/// Which padding keeps what the model says of a scene smaller than one tile (SceneTiler pads such tiles up to the
/// model input). UCM-Captions val images are brought to the model's input the way its preprocessing does (shortest
/// side resized, centre crop); from each, centre crops of a few sizes smaller than the input are placed at the top left
/// (as SceneTiler places a small scene's pixels) and padded with each candidate. Per padding and crop size: mean cosine
/// of the crop's 256-d image vector to the whole image's, and the share of crops whose zero-shot class (nearest [RET]
/// vector of "an aerial image of {class}" over the 21 UCM classes) equals the whole image's.
/// A quality measurement, not a timing: one deterministic pass (no rounds).
/// </summary>
public static class PaddingBenchmark
{
    // Selection rule, fixed before the first run: the padding with the highest mean cosine to the whole image's vector,
    // over every crop (all crop sizes and images, equally weighted), wins. The class agreement is reported, not used.
    private static readonly TilePadding[] Candidates = [TilePadding.Zero, TilePadding.Edge, TilePadding.Mirror, TilePadding.Mean];

    // UCM classes in alphabetical order (image N is class (N-1)/100), in plain words for the prompts.
    private static readonly string[] Classes =
    [
        "agricultural", "airplane", "baseball diamond", "beach", "buildings", "chaparral", "dense residential", "forest", "freeway",
        "golf course", "harbor", "intersection", "medium residential", "mobile home park", "overpass", "parking lot", "river", "runway",
        "sparse residential", "storage tanks", "tennis court",
    ];

    public static async Task<int> RunAsync(string[] args)
    {
        var a = new BenchArgs(args);
        var modelDir = a.String("--model", Path.Combine(RepositoryPaths.FindRoot(), "models", "default"));
        var perClass = a.Int("--per-class", 3);
        var crops = a.String("--crops", "150x120,112x112,200x96,64x64").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(ParseSize).ToArray();
        using var encoder = RsCapRetTileEncoder.Load(modelDir, "cpu");
        var size = encoder.InputSize;
        if (crops.Any(c => c.W > size || c.H > size)) throw new BenchArgsException($"--crops must fit the model's {size}-px input");

        var dataset = Path.Combine(RepositoryPaths.SharedDirectory(), "data", "ucm-captions");
        var images = ValImages(Path.Combine(dataset, "dataset.json"), perClass);
        Console.WriteLine($"model: {modelDir} (input {size} px); {images.Count} UCM-Captions val images ({perClass} per class); crops {string.Join(", ", crops.Select(c => $"{c.W}x{c.H}"))}");
        var report = new BenchReport("padding", await BenchEnvironment.CollectAsync(torch: true));
        report.Options["model"] = Path.GetFullPath(modelDir);
        report.Options["per-class"] = perClass;
        report.Options["crops"] = string.Join(',', crops.Select(c => $"{c.W}x{c.H}"));

        var prompts = encoder.EmbedTexts(Classes.Select(c => $"an aerial image of {c}").ToList());
        var views = images.Select(i => ModelView(encoder, RasterImage.ReadRgb(Path.Combine(dataset, "images", i.File)))).ToList();
        var full = Encode(encoder, views);
        var fullClass = full.Select(v => ZeroShot(prompts, v)).ToArray();
        var labelled = images.Select((i, k) => fullClass[k] == i.Class).Count(x => x);

        // cos[padding][crop][image], same[padding][crop][image]
        var cos = new Dictionary<(TilePadding, int), double[]>();
        var same = new Dictionary<(TilePadding, int), bool[]>();
        for (var c = 0; c < crops.Length; c++)
        {
            var (w, h) = crops[c];
            var cut = views.Select(v => Crop(v, (size - w) / 2, (size - h) / 2, w, h)).ToList();
            foreach (var p in Candidates)
            {
                var vectors = Encode(encoder, cut.Select(x => TilePadder.Pad(x, size, p)).ToList());
                cos[(p, c)] = vectors.Select((v, k) => Dot(v, full[k])).ToArray();
                same[(p, c)] = vectors.Select((v, k) => ZeroShot(prompts, v) == fullClass[k]).ToArray();
            }
        }

        var sides = new List<SideResult>();
        Console.WriteLine();
        Console.WriteLine($"{"padding",-8} {"crop",-8} {"mean cos",9} {"p10 cos",8} {"same class",10}");
        foreach (var p in Candidates)
        {
            for (var c = 0; c < crops.Length; c++)
            {
                var xs = cos[(p, c)];
                var agree = same[(p, c)].Average(x => x ? 1.0 : 0.0);
                Console.WriteLine(FormattableString.Invariant($"{Name(p),-8} {crops[c].W + "x" + crops[c].H,-8} {xs.Average(),9:F4} {Rounds.Percentile(xs, 10),8:F4} {agree,10:P1}"));
                sides.Add(new SideResult($"{Name(p)}, {crops[c].W}x{crops[c].H}", "cosine",
                    [new Sample(xs.Average(), [new Metric("p10 cosine", "cosine", Rounds.Percentile(xs, 10)), new Metric("same zero-shot class", "share", agree)])]));
            }
            var all = Enumerable.Range(0, crops.Length).SelectMany(c => cos[(p, c)]).ToArray();
            var allSame = Enumerable.Range(0, crops.Length).SelectMany(c => same[(p, c)]).Average(x => x ? 1.0 : 0.0);
            Console.WriteLine(FormattableString.Invariant($"{Name(p),-8} {"all",-8} {all.Average(),9:F4} {Rounds.Percentile(all, 10),8:F4} {allSame,10:P1}"));
            sides.Add(new SideResult($"{Name(p)}, all crops", "cosine",
                [new Sample(all.Average(), [new Metric("p10 cosine", "cosine", Rounds.Percentile(all, 10)), new Metric("same zero-shot class", "share", allSame)])]));
        }

        double Overall(TilePadding p) => Enumerable.Range(0, crops.Length).SelectMany(c => cos[(p, c)]).Average();
        var ranked = Candidates.OrderByDescending(Overall).ToArray();
        var winner = ranked[0];
        // Paired: on how many crops the winner's vector is nearer the whole image's than each other padding's.
        foreach (var other in ranked.Skip(1))
        {
            var pairs = Enumerable.Range(0, crops.Length).SelectMany(c => cos[(winner, c)].Zip(cos[(other, c)])).ToArray();
            report.Facts.Add(($"{Name(winner)} nearer than {Name(other)}", FormattableString.Invariant(
                $"{pairs.Count(x => x.First > x.Second)} of {pairs.Length} crops (mean cosine {Overall(winner) - Overall(other):+0.0000;-0.0000})")));
        }
        report.Facts.Add(("rule", "highest mean cosine to the whole image's vector over all crops wins (fixed before the run)"));
        report.Facts.Add(("winner", Name(winner)));
        report.Facts.Add(("whole images classed as labelled", FormattableString.Invariant($"{labelled} of {images.Count} ({(double)labelled / images.Count:P1})")));
        report.Notes.Add("one deterministic pass, no rounds: each side's figure is a mean over crops, not a timing");
        report.Print(sides, [], 0, 1);
        return 0;
    }

    private static string Name(TilePadding p) => p.ToString().ToLowerInvariant();

    private static (int W, int H) ParseSize(string s)
    {
        var parts = s.Split('x');
        return parts.Length == 2 && int.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var w) && w > 0
                                 && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out var h) && h > 0
            ? (w, h) : throw new BenchArgsException($"--crops expects sizes like 150x120, got '{s}'");
    }

    /// <summary>The first <paramref name="perClass"/> val images of each class: file name and class index.</summary>
    private static List<(string File, int Class)> ValImages(string datasetJson, int perClass)
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(datasetJson));
        return doc.RootElement.GetProperty("images").EnumerateArray()
            .Where(i => i.GetProperty("split").GetString() == "val")
            .Select(i => (File: i.GetProperty("filename").GetString()!, Class: i.GetProperty("imgid").GetInt32() / 100))
            .GroupBy(i => i.Class).OrderBy(g => g.Key).SelectMany(g => g.Take(perClass)).ToList();
    }

    /// <summary>The image as the model sees it (its preprocessing's resize and centre crop), back in 8-bit RGB.</summary>
    internal static RgbImage ModelView(RsCapRetTileEncoder encoder, RgbImage image)
    {
        using var scope = NewDisposeScope();
        var pre = encoder.Preprocessor;
        var x = pre.Process(image);
        var rgb = (x * tensor(pre.Std).view(3, 1, 1) + tensor(pre.Mean).view(3, 1, 1)).mul(255).round().clamp(0, 255)
            .to_type(ScalarType.Byte).permute(1, 2, 0).contiguous();
        return new RgbImage(pre.Size, pre.Size, rgb.data<byte>().ToArray());
    }

    internal static RgbImage Crop(RgbImage image, int x0, int y0, int w, int h)
    {
        var crop = RgbImage.Create(w, h);
        for (var y = 0; y < h; y++) Array.Copy(image.Pixels, ((y0 + y) * image.Width + x0) * 3, crop.Pixels, y * w * 3, w * 3);
        return crop;
    }

    private static List<float[]> Encode(RsCapRetTileEncoder encoder, List<RgbImage> images)
    {
        var vectors = new List<float[]>(images.Count);
        foreach (var chunk in images.Chunk(32))
            vectors.AddRange(encoder.Encode(chunk, caption: false, CancellationToken.None).Select(e => e.Embedding));
        return vectors;
    }

    private static int ZeroShot(IReadOnlyList<float[]> prompts, float[] v)
    {
        var best = 0;
        for (var k = 1; k < prompts.Count; k++) if (Dot(prompts[k], v) > Dot(prompts[best], v)) best = k;
        return best;
    }

    // The vectors are L2-normalised: the dot product is the cosine.
    private static double Dot(float[] a, float[] b)
    {
        double s = 0;
        for (var i = 0; i < a.Length; i++) s += (double)a[i] * b[i];
        return s;
    }
}
