using System.Globalization;

namespace RsCapRet.Core;

/// <summary>A count with its noun in the right number, for lines users read ("1 tile", "2 tiles").</summary>
public static class Counted
{
    /// <summary>"<paramref name="n"/> <paramref name="noun"/>", the noun plural (+s, or <paramref name="plural"/>) unless n is 1; <paramref name="format"/> formats n (invariant culture).</summary>
    public static string Of(long n, string noun, string? plural = null, string format = "0") =>
        $"{n.ToString(format, CultureInfo.InvariantCulture)} {(n == 1 ? noun : plural ?? noun + "s")}";
}
