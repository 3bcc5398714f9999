using System.Net;
using System.Text;
using Hangfire.Dashboard;
using Hangfire.Dashboard.Pages;

namespace RsCapRet.Jobs;

/// <summary>
/// The dashboard's "Job definitions" page (/hangfire/definitions, in its top menu): every job of jobs/*.json that
/// `rscapret serve` read, with its schedule — a cron, listed on Hangfire's "Recurring Jobs" page too, or "manual",
/// which is not registered there (issue 29: no "31 February" schedule shown as DISABLED) — its arguments, and the
/// command that runs it when asked. Everything from the files is HTML-encoded.
/// </summary>
public sealed class JobDefinitionsPage : RazorPage
{
    public const string Route = "/definitions";
    private static readonly object Sync = new();
    private static (IReadOnlyList<JobDefinition> Definitions, string Folder)? _shown;
    private static bool _registered;

    /// <summary>
    /// Shows <paramref name="definitions"/> (read from <paramref name="folder"/>) on the page. Hangfire's routes and menu are
    /// process-wide, so the page is registered once and shows what the host that called last read.
    /// </summary>
    public static void Show(IReadOnlyList<JobDefinition> definitions, string folder)
    {
        lock (Sync)
        {
            _shown = (definitions, folder);
            if (_registered) return;
            DashboardRoutes.Routes.AddRazorPage(Route, _ => new JobDefinitionsPage());
            NavigationMenu.Items.Add(page => new MenuItem("Job definitions", page.Url.To(Route)) { Active = page.RequestPath.StartsWith(Route, StringComparison.Ordinal) });
            _registered = true;
        }
    }

    public override void Execute()
    {
        Layout = new LayoutPage("Job definitions");
        (IReadOnlyList<JobDefinition> Definitions, string Folder)? shown;
        lock (Sync) shown = _shown;
        WriteLiteral(shown is { } s ? Render(s.Definitions, s.Folder) : "<h1 class=\"page-header\">Job definitions</h1><p>No job definitions were read.</p>");
    }

    public static string Render(IReadOnlyList<JobDefinition> definitions, string folder)
    {
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        var sb = new StringBuilder("<h1 class=\"page-header\">Job definitions</h1>");
        sb.Append("<p>The jobs of <code>").Append(E(folder)).Append("</code>. A job with a cron is a recurring job (also on the Recurring Jobs page); ")
          .Append("a job whose cron is <code>manual</code> runs only when asked: it is not registered as a recurring job, so that page does not list it. ")
          .Append("Paths are relative to <code>").Append(E(Path.GetDirectoryName(Path.GetFullPath(folder)))).Append("</code>.</p>");
        if (definitions.Count == 0) return sb.Append("<p>The folder holds no definitions.</p>").ToString();
        sb.Append("<table class=\"table table-condensed\"><thead><tr><th>id</th><th>job</th><th>schedule</th><th>queue</th><th>arguments</th><th>run it with</th></tr></thead><tbody>");
        foreach (var d in definitions)
        {
            sb.Append("<tr><td>").Append(E(d.Id)).Append("</td><td>").Append(E(d.Job)).Append("</td><td>")
              .Append(d.IsManual ? "manual: runs only when asked (not a recurring job)" : $"cron <code>{E(d.Cron)}</code> (UTC)")
              .Append("</td><td>").Append(E(d.Queue)).Append("</td><td>")
              .Append(E(string.Join(", ", d.Args.Select(a => $"{a.Key} {a.Value}")))).Append("</td><td><code>").Append(E(d.Command())).Append("</code></td></tr>");
        }
        return sb.Append("</tbody></table>").ToString();
    }
}
