using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace RsCapRet.Raster;

/// <summary>Where a scene's acquisition time came from (stored on the scene as acquired_source).</summary>
public enum AcquisitionSource { Metadata, Stac, FileName }

/// <summary>A scene's acquisition time, its source, the metadata key or pattern it came from, and the STAC collection id when there is one.</summary>
public sealed record Acquisition(DateTimeOffset Time, AcquisitionSource Source, string Detail, string? StacCollection = null)
{
    public string SourceName => Source switch
    {
        AcquisitionSource.Metadata => "metadata",
        AcquisitionSource.Stac => "stac",
        _ => "filename",
    };
}

/// <summary>
/// Finds a scene's acquisition time, in this order: the raster's own metadata (GDAL/TIFF date tags and common sensor
/// keys), a STAC item beside the file (<c>FILE.json</c>), then a file-name pattern (default: NAIP's trailing
/// <c>_YYYYMMDD</c>). A STAC item that exists but cannot be used is an error for that scene, not a silent fallback.
/// </summary>
public static class AcquisitionTimes
{
    public const string PatternVariable = "RSCAPRET_ACQUIRED_PATTERN";
    /// <summary>A trailing <c>_YYYYMMDD</c> in the file name, e.g. m_3807504_ne_18_060_20180815.tif (NAIP).</summary>
    public const string DefaultPattern = @"_(?<date>(?:19|20)\d{6})(?:\.[^.]+)*$";

    // Sensor keys before TIFFTAG_DATETIME: the TIFF tag is often the file's processing time, a sensor key never is.
    private static readonly (string Key, string? Domain)[] MetadataKeys =
    [
        ("ACQUISITIONDATETIME", null), ("ACQUISITIONDATETIME", "IMAGERY"), ("ACQUISITION_DATETIME", null),
        ("DATE_ACQUIRED", null), ("ACQUISITION_DATE", null), ("IMAGE_DATE", null),
        ("TIFFTAG_DATETIME", null),
    ];

    private static readonly Regex Rfc3339Zone = new(@"^\d{4}-\d{2}-\d{2}T.*(Z|[+-]\d{2}:\d{2})$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private static readonly string[] Formats =
    [
        "yyyy:MM:dd HH:mm:ss", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd'T'HH:mm:ss.FFFFFFF",
        "yyyy-MM-dd", "yyyyMMdd", "yyyy:MM:dd",
    ];

    /// <summary>The file-name pattern from <see cref="PatternVariable"/>, else the default; it must have a <c>date</c> group (yyyyMMdd).</summary>
    public static Regex PatternFromEnvironment()
    {
        var text = Core.Configuration.EnvironmentSettings.Load<RasterOptions>().AcquiredPattern;
        return Pattern(text ?? DefaultPattern, PatternVariable + ": ");
    }

    /// <summary>The pattern, or a FormatException whose message starts with <paramref name="prefix"/> (e.g. "VARIABLE=").</summary>
    public static Regex Pattern(string text, string prefix = "")
    {
        Regex rx;
        try { rx = new Regex(text, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)); }
        catch (ArgumentException e) { throw new FormatException($"{prefix}'{text}' is not a regular expression: {e.Message}"); }
        if (!rx.GetGroupNames().Contains("date")) throw new FormatException($"{prefix}'{text}' has no (?<date>...) group");
        return rx;
    }

    /// <param name="stacItem">the scene's STAC item from a catalog; null: <c>path + ".json"</c> when it exists</param>
    public static Acquisition? Find(RasterDataset ds, string path, Regex? namePattern, string? stacItem = null)
        => FromMetadata(ds) ?? (stacItem is null ? FromStacItem(path) : FromStacItemFile(stacItem)) ?? FromFileName(path, namePattern);

    public static Acquisition? FromMetadata(RasterDataset ds)
    {
        foreach (var (key, domain) in MetadataKeys)
            if (ds.Metadata(key, domain) is { } v && Parse(v) is { } t)
                return new Acquisition(t, AcquisitionSource.Metadata, domain is null ? key : $"{domain}:{key}");
        return null;
    }

    /// <summary>The STAC item at <c>path + ".json"</c>: properties.datetime, else start_datetime when datetime is null.</summary>
    public static Acquisition? FromStacItem(string path) => File.Exists(path + ".json") ? FromStacItemFile(path + ".json") : null;

    /// <summary>The time of the STAC item file <paramref name="item"/>; a malformed item throws with its path and the problem.</summary>
    public static Acquisition FromStacItemFile(string item)
    {
        if (!File.Exists(item)) throw new RasterException(item, "STAC item does not exist");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(File.ReadAllBytes(item)); }
        catch (JsonException e) { throw new RasterException(item, $"is not valid JSON ({e.Message})"); }
        using (doc) return FromStacItemJson(item, doc.RootElement);
    }

    /// <summary>The time of a STAC item already parsed from the file <paramref name="item"/> (named in errors).</summary>
    public static Acquisition FromStacItemJson(string item, JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("type", out var type) || type.ValueKind != JsonValueKind.String || type.GetString() != "Feature")
            throw new RasterException(item, "is not a STAC item (\"type\": \"Feature\" expected)");
        if (!root.TryGetProperty("properties", out var props) || props.ValueKind != JsonValueKind.Object)
            throw new RasterException(item, "STAC item has no \"properties\" object");
        var (field, value) = props.TryGetProperty("datetime", out var dt) && dt.ValueKind != JsonValueKind.Null
            ? ("datetime", dt)
            : props.TryGetProperty("start_datetime", out var start) && start.ValueKind != JsonValueKind.Null
                ? ("start_datetime", start)
                : throw new RasterException(item, "STAC item has neither properties.datetime nor properties.start_datetime");
        // STAC requires RFC 3339 with a time zone; anything else is a broken item, not a guess.
        var text = value.ValueKind == JsonValueKind.String ? value.GetString()! : "";
        if (!Rfc3339Zone.IsMatch(text) || !DateTimeOffset.TryParseExact(text, "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK",
                CultureInfo.InvariantCulture, DateTimeStyles.AdjustToUniversal, out var t))
            throw new RasterException(item, $"properties.{field} {value.GetRawText()} is not an RFC 3339 date-time");
        string? collection = null;
        if (root.TryGetProperty("collection", out var c))
            collection = c.ValueKind switch
            {
                JsonValueKind.String => c.GetString(),
                JsonValueKind.Null => null,
                _ => throw new RasterException(item, "STAC item's \"collection\" is not a string"),
            };
        return new Acquisition(t, AcquisitionSource.Stac, $"{Path.GetFileName(item)} properties.{field}", collection);
    }

    public static Acquisition? FromFileName(string path, Regex? pattern)
    {
        if (pattern is null) return null;
        var name = Path.GetFileName(path);
        var m = pattern.Match(name);
        if (!m.Success) return null;
        return DateTimeOffset.TryParseExact(m.Groups["date"].Value, "yyyyMMdd", CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t)
            ? new Acquisition(t, AcquisitionSource.FileName, pattern.ToString())
            : null;
    }

    private static DateTimeOffset? Parse(string value)
    {
        var v = value.Trim();
        // Metadata without a zone is taken as UTC (what TIFF and most sensors write).
        return v.Length > 0 && DateTimeOffset.TryParseExact(v, Formats, CultureInfo.InvariantCulture,
            DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var t) ? t : null;
    }
}
