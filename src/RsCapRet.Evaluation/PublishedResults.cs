using System.Text;

namespace RsCapRet.Evaluation;

/// <summary>
/// The published figures to print beside measured ones: the tables of a markdown file (the shared
/// reference/published-results.md), filtered to the rows of one dataset. Rows are copied, never re-typed, so a
/// report shows exactly what the reference file says.
/// </summary>
public static class PublishedResults
{
    /// <summary>The reference file's dataset name (first table column) for a dataset folder name.</summary>
    public static string? ReferenceName(string dataset)
    {
        var d = dataset.ToLowerInvariant();
        return d.Contains("ucm") ? "UCM" : d.Contains("rsicd") ? "RSICD" : d.Contains("sydney") ? "Sydney" : d.Contains("nwpu") ? "NWPU" : null;
    }

    /// <summary>
    /// Every table of <paramref name="markdown"/> whose first column is "dataset", with its heading and only the rows
    /// of <paramref name="dataset"/>; empty when no row matches.
    /// </summary>
    public static string ForDataset(string markdown, string dataset)
    {
        if (ReferenceName(dataset) is not { } name) return "";
        var output = new StringBuilder();
        string? heading = null;
        var lines = markdown.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
        for (var i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith('#')) { heading = lines[i].TrimStart('#').Trim(); continue; }
            if (!IsRow(lines[i]) || i + 1 >= lines.Length || !lines[i + 1].TrimStart().StartsWith("|---") && !lines[i + 1].TrimStart().StartsWith("| ---")) continue;
            var header = Cells(lines[i]);
            if (header.Length == 0 || !header[0].Equals("dataset", StringComparison.OrdinalIgnoreCase)) continue;
            var rows = new List<string>();
            var j = i + 2;
            for (; j < lines.Length && IsRow(lines[j]); j++)
                if (Cells(lines[j]) is { Length: > 0 } cells && cells[0].Equals(name, StringComparison.OrdinalIgnoreCase)) rows.Add(lines[j]);
            if (rows.Count > 0)
            {
                output.AppendLine().AppendLine($"**{heading}** (published, test split; not measured here)").AppendLine();
                output.AppendLine(lines[i]).AppendLine(lines[i + 1]);
                foreach (var r in rows) output.AppendLine(r);
            }
            i = j - 1;
        }
        return output.ToString();
    }

    private static bool IsRow(string line) => line.TrimStart().StartsWith('|');

    private static string[] Cells(string row) => row.Trim().Trim('|').Split('|').Select(c => c.Trim()).ToArray();
}
