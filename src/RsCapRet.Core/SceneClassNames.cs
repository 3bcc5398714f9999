using System.Globalization;
using System.Text.RegularExpressions;

namespace RsCapRet.Core;

/// <summary>
/// The scene classes of the captioning datasets as file names give them (RSICD's "class_N.jpg", UCM-Captions' "N.jpg"
/// in blocks of 100 per class) and as a user would type them; shared by the evaluations and the relevance calibration.
/// </summary>
public static partial class SceneClassNames
{
    /// <summary>UCM-Captions' 21 classes in numbering order.</summary>
    public static readonly IReadOnlyList<string> UcmClasses =
    [
        "agricultural", "airplane", "baseballdiamond", "beach", "buildings", "chaparral", "denseresidential", "forest", "freeway",
        "golfcourse", "harbor", "intersection", "mediumresidential", "mobilehomepark", "overpass", "parkinglot", "river", "runway",
        "sparseresidential", "storagetanks", "tenniscourt",
    ];

    /// <summary>Class names in the land-use labels' words (LandUseQuery.DefaultLabels); others are used as they are.</summary>
    private static readonly Dictionary<string, string> Words = new()
    {
        ["agricultural"] = "farmland", ["baseballdiamond"] = "baseball field", ["baseballfield"] = "baseball field",
        ["denseresidential"] = "dense residential area", ["mediumresidential"] = "medium residential area",
        ["sparseresidential"] = "sparse residential area", ["golfcourse"] = "golf course", ["mobilehomepark"] = "mobile home park",
        ["parkinglot"] = "parking lot", ["parking"] = "parking lot", ["storagetanks"] = "storage tanks", ["tenniscourt"] = "tennis court",
        ["bareland"] = "bare land", ["railwaystation"] = "railway station", ["commercial"] = "commercial area", ["industrial"] = "industrial area",
    };

    [GeneratedRegex("^([a-z]+)_[0-9]+\\.", RegexOptions.CultureInvariant)]
    public static partial Regex NamedClass();

    /// <summary>The words a user would type for a class ("storagetanks" → "storage tanks").</summary>
    public static string LabelOf(string className) => Words.TryGetValue(className, out var w) ? w : className;

    /// <summary>
    /// An image's scene class in dataset <paramref name="dataset"/>: a "class_N.jpg" name anywhere; UCM-Captions'
    /// numbering only in a UCM dataset (RSICD's numbered files have no class in their names).
    /// </summary>
    public static string? ClassOf(string dataset, string fileName) =>
        NamedClass().IsMatch(Path.GetFileName(fileName)) || dataset.Contains("ucm", StringComparison.OrdinalIgnoreCase) ? ClassOf(fileName) : null;

    /// <summary>An image's scene class from its file name: RSICD's "class_N.jpg", UCM-Captions' "N.jpg" (class (N − 1) / 100).</summary>
    public static string? ClassOf(string fileName)
    {
        var name = Path.GetFileName(fileName);
        if (NamedClass().Match(name) is { Success: true } m) return m.Groups[1].Value;
        return int.TryParse(Path.GetFileNameWithoutExtension(name), NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && (n - 1) / 100 < UcmClasses.Count
            ? UcmClasses[(n - 1) / 100] : null;
    }
}
