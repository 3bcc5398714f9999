using System.Text.Json;

namespace RsCapRet.Training.Datasets;

/// <summary>One image of a captioning dataset with its reference captions and the dataset it came from.</summary>
public sealed record CaptionedImage(string Dataset, string ImageId, string ImagePath, string Split, IReadOnlyList<string> Captions);

/// <summary>
/// Karpathy-style dataset.json (UCM-Captions, Sydney-Captions, RSICD, NWPU-Captions): images[].filename, split,
/// sentences[].raw, optional filepath; images under images/ (or the filepath folder) beside the JSON.
/// </summary>
public static class KarpathyDataset
{
    public static IReadOnlyList<CaptionedImage> Load(string datasetDirectory, string name, IReadOnlySet<string>? splits = null)
    {
        var json = Path.Combine(datasetDirectory, "dataset.json");
        if (!File.Exists(json)) throw new FileNotFoundException($"{json}: dataset description does not exist", json);
        var list = new List<CaptionedImage>();
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(json));
            foreach (var im in doc.RootElement.GetProperty("images").EnumerateArray())
            {
                var split = im.GetProperty("split").GetString() ?? throw new FormatException("an image has no split");
                if (split == "restval") split = "train";
                if (splits != null && !splits.Contains(split)) continue;
                var file = im.GetProperty("filename").GetString() ?? throw new FormatException("an image has no filename");
                var folder = im.TryGetProperty("filepath", out var fp) && fp.GetString() is { Length: > 0 } f ? f : "images";
                var captions = im.GetProperty("sentences").EnumerateArray().Select(s => s.GetProperty("raw").GetString()!.Trim()).Where(s => s.Length > 0).ToList();
                if (captions.Count == 0) throw new FormatException($"image '{file}' has no captions");
                list.Add(new CaptionedImage(name, $"{name}/{file}", Path.Combine(datasetDirectory, folder, file), split, captions));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new FormatException($"{json}: not a Karpathy-style dataset ({e.Message})", e);
        }
        return list;
    }

    /// <summary>Several datasets as one ("Cap-4"-style); each image keeps its source dataset.</summary>
    public static IReadOnlyList<CaptionedImage> Merge(IEnumerable<(string Name, string Directory)> datasets, IReadOnlySet<string>? splits = null) =>
        datasets.SelectMany(d => Load(d.Directory, d.Name, splits)).ToList();
}
