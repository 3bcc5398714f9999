using System.Globalization;

namespace RsCapRet.Raster;

/// <summary>
/// The bands a user names for R, G and B ("4,3,2": three positive 1-based band numbers), parsed one way for the CLI's
/// --bands and for the jobs' bands parameter. Whether the raster has those bands is checked when it is opened.
/// </summary>
public static class BandSelection
{
    /// <summary>What a valid value is, in the words of the error messages.</summary>
    public const string Rule = "must be three band numbers such as 4,3,2";

    /// <summary>"4,3,2" as three positive band numbers; false when the text is not that.</summary>
    public static bool TryParse(string text, out int[] bands)
    {
        var parts = text.Split(',');
        var values = new int[parts.Length];
        var ok = parts.Length == 3 && parts.Select((p, i) =>
            int.TryParse(p.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out values[i]) && values[i] > 0).All(valid => valid);
        bands = ok ? values : [];
        return ok;
    }

    /// <summary>
    /// "4,3,2" as three positive band numbers; a <see cref="FormatException"/> naming <paramref name="parameter"/> and the
    /// value otherwise ("--bands: must be three band numbers such as 4,3,2, got '4,3'").
    /// </summary>
    public static int[] Parse(string text, string parameter) =>
        TryParse(text, out var bands) ? bands : throw new FormatException($"{parameter}: {Rule}, got '{text}'");
}
