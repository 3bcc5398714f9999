using System.Net;
using System.Text;
using Hangfire;
using Hangfire.Common;
using Hangfire.Dashboard;

namespace RsCapRet.Jobs;

/// <summary>
/// An archive scan's decisions on its job page in the dashboard: the counts, then every path that was not unchanged
/// with its decision, why, and a link to the ingest job queued for it. Paths and messages are HTML-encoded.
/// </summary>
public static class ScanReportView
{
    /// <summary>Rows drawn at the most (the report parameter keeps them all).</summary>
    private const int MaxRows = 500;

    public static string Html(ScanJobReport report)
    {
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        var shown = report.Decisions.Where(d => d.Decision != "unchanged").ToList();
        var sb = new StringBuilder();
        sb.Append("<div class=\"rscapret-scan\" style=\"margin: 12px 0\"><h3>Decisions</h3>");
        sb.Append("<p>").Append(E(report.Summary)).Append("</p>");
        if (shown.Count > 0)
        {
            sb.Append("<table class=\"table table-condensed\"><thead><tr><th>decision</th><th>path</th><th>why</th><th>ingest job</th></tr></thead><tbody>");
            foreach (var d in shown.Take(MaxRows))
            {
                var why = d.Decision == "moved" ? $"from {d.From}; same bytes, no model work" : d.Detail;
                sb.Append("<tr><td>").Append(E(d.Decision)).Append("</td><td>").Append(E(d.Path)).Append("</td><td>").Append(E(why)).Append("</td><td>");
                // The job pages sit beside this one (…/jobs/details/ID).
                if (d.JobId is { } id) sb.Append("<a href=\"").Append(E(Uri.EscapeDataString(id))).Append("\">#").Append(E(id)).Append("</a>");
                sb.Append("</td></tr>");
            }
            sb.Append("</tbody></table>");
            if (shown.Count > MaxRows) sb.Append("<p>… and ").Append(shown.Count - MaxRows).Append(" more</p>");
        }
        return sb.Append("</div>").ToString();
    }

    /// <summary>Registers the table with the dashboard's job details page.</summary>
    public static IGlobalConfiguration UseScanReports(IGlobalConfiguration config) =>
        config.UseJobDetailsRenderer(11, dto =>
            dto.JobDetails.Properties is { } p && p.TryGetValue(IndexArchiveJob.ReportParameter, out var json) && !string.IsNullOrEmpty(json)
                && Read(json) is { } report ? new NonEscapedString(Html(report)) : null);

    private static ScanJobReport? Read(string json)
    {
        try { return SerializationHelper.Deserialize<ScanJobReport>(json, SerializationOption.User); }
        catch (Exception e) when (e is not OutOfMemoryException) { return null; }   // a report of another version: no table
    }
}
