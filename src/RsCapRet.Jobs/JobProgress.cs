using System.Globalization;
using System.Net;
using System.Text.Json;
using Hangfire;
using Hangfire.Dashboard;
using Hangfire.Server;

namespace RsCapRet.Jobs;

/// <summary>A job's progress as the dashboard shows it: done of total units, and a line of status text.</summary>
public sealed record ProgressValue(long Done, long Total, string Unit, string? Text, DateTime UpdatedUtc);

/// <summary>
/// Progress of a running job, stored as a job parameter (so it lives in the job storage every worker and the web
/// host share) and drawn as a bar on the job's page in the Hangfire dashboard. Writes at most once a second.
/// </summary>
public sealed class JobProgress(Action<ProgressValue>? store)
{
    public const string Parameter = "rscapret.progress";
    private DateTime _last = DateTime.MinValue;

    /// <summary>The progress of the job a worker runs, stored through its context (none without one).</summary>
    public JobProgress(PerformContext? context) : this(context is null ? null : p => JobPageView.SetParameter(context, Parameter, p)) { }

    public void Report(long done, long total, string unit, string? text = null, bool force = false)
    {
        if (store is null) return;
        var now = DateTime.UtcNow;
        if (!force && (now - _last).TotalSeconds < 1 && done < total) return;
        _last = now;
        store(new ProgressValue(done, total, unit, text, now));
    }

    /// <summary>The progress a job last stored, read from the job storage.</summary>
    public static ProgressValue? Read(Hangfire.Storage.IStorageConnection connection, string jobId) =>
        Read(new Dictionary<string, string> { [Parameter] = connection.GetJobParameter(jobId, Parameter) });

    private static readonly JsonSerializerOptions Lenient = new() { PropertyNameCaseInsensitive = true };

    public static ProgressValue? Read(IDictionary<string, string>? properties)
    {
        if (properties is null || !properties.TryGetValue(Parameter, out var json) || string.IsNullOrEmpty(json)) return null;
        // Hangfire stores parameters with its own (Newtonsoft) serializer: read leniently.
        try { return JsonSerializer.Deserialize<ProgressValue>(json, Lenient); }
        catch (JsonException) { return null; }
    }

    /// <summary>The bar on the job details page (Bootstrap markup the dashboard already styles).</summary>
    public static string Html(ProgressValue p)
    {
        var pct = p.Total > 0 ? Math.Clamp(100.0 * p.Done / p.Total, 0, 100) : 0;
        var label = string.Create(CultureInfo.InvariantCulture, $"{p.Done:N0} / {p.Total:N0} {p.Unit} ({pct:F0} %)");
        return string.Create(CultureInfo.InvariantCulture, $"""
            <div class="rscapret-progress" style="margin: 12px 0">
              <h3>Progress</h3>
              <div class="progress" style="margin-bottom: 4px"><div class="progress-bar" role="progressbar" style="width: {pct:F1}%" aria-valuenow="{pct:F0}" aria-valuemin="0" aria-valuemax="100">{WebUtility.HtmlEncode(label)}</div></div>
              <div class="text-muted">{WebUtility.HtmlEncode(p.Text ?? "")} (updated {p.UpdatedUtc:yyyy-MM-dd HH:mm:ss} UTC)</div>
            </div>
            """);
    }

    /// <summary>Registers the bar with the dashboard's job details page.</summary>
    public static IGlobalConfiguration UseProgressBars(IGlobalConfiguration config) =>
        config.UseJobDetailsRenderer(10, dto => Read(dto.JobDetails.Properties) is { } p ? new NonEscapedString(Html(p)) : null);
}
