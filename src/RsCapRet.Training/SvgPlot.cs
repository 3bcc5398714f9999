using System.Text;

namespace RsCapRet.Training;

/// <summary>A minimal line chart as SVG (losses on the left axis, percentages on the right).</summary>
public static class SvgPlot
{
    public static string Lines(string title, string xLabel, IReadOnlyList<(string Name, double[] X, double[] Y, bool RightAxis)> series)
    {
        const int w = 720, h = 400, l = 60, r = 60, t = 40, b = 50;
        string[] colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"];
        var xs = series.SelectMany(s => s.X).DefaultIfEmpty(0).ToArray();
        double xMin = xs.Min(), xMax = Math.Max(xs.Max(), xMin + 1);
        (double Min, double Max) Range(bool right)
        {
            var ys = series.Where(s => s.RightAxis == right).SelectMany(s => s.Y).Where(double.IsFinite).DefaultIfEmpty(0).ToArray();
            var (mn, mx) = (Math.Min(0, ys.Min()), ys.Max());
            return (mn, mx <= mn ? mn + 1 : mx * 1.05);
        }
        var left = Range(false);
        var rightRange = Range(true);
        var sb = new StringBuilder();
        sb.AppendLine(FormattableString.Invariant($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">"));
        sb.AppendLine($"<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/><text x=\"{w / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{title}</text>");
        sb.AppendLine(FormattableString.Invariant($"<rect x=\"{l}\" y=\"{t}\" width=\"{w - l - r}\" height=\"{h - t - b}\" fill=\"none\" stroke=\"#888\"/>"));
        sb.AppendLine(FormattableString.Invariant($"<text x=\"{w / 2}\" y=\"{h - 12}\" text-anchor=\"middle\">{xLabel}</text>"));
        for (var i = 0; i <= 4; i++)
        {
            var y = t + (h - t - b) * i / 4.0;
            sb.AppendLine(FormattableString.Invariant($"<text x=\"{l - 6}\" y=\"{y + 4:F0}\" text-anchor=\"end\">{left.Max - (left.Max - left.Min) * i / 4:0.##}</text>"));
            sb.AppendLine(FormattableString.Invariant($"<text x=\"{w - r + 6}\" y=\"{y + 4:F0}\">{rightRange.Max - (rightRange.Max - rightRange.Min) * i / 4:0.#}</text>"));
        }
        for (var k = 0; k < series.Count; k++)
        {
            var (name, x, y, right) = series[k];
            var (mn, mx) = right ? rightRange : left;
            var pts = string.Join(" ", x.Zip(y).Where(p => double.IsFinite(p.Second)).Select(p => FormattableString.Invariant(
                $"{l + (p.First - xMin) / (xMax - xMin) * (w - l - r):F1},{t + (1 - (p.Second - mn) / (mx - mn)) * (h - t - b):F1}")));
            sb.AppendLine($"<polyline fill=\"none\" stroke=\"{colours[k % colours.Length]}\" stroke-width=\"2\" points=\"{pts}\"/>");
            sb.AppendLine(FormattableString.Invariant($"<text x=\"{l + 10}\" y=\"{t + 16 + 16 * k}\" fill=\"{colours[k % colours.Length]}\">{System.Security.SecurityElement.Escape(name)}{(right ? " (right axis)" : "")}</text>"));
        }
        sb.AppendLine("</svg>");
        return sb.ToString();
    }
}
