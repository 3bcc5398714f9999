using System.Globalization;
using System.Net;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Hangfire;
using Hangfire.Common;
using Hangfire.Dashboard;
using Hangfire.Server;
using Hangfire.Storage;

namespace RsCapRet.Jobs;

/// <summary>
/// The top of a job's page in the dashboard (issue 29): its arguments by name in words (scene path, model folder,
/// options as "GSD 0.5 m/px, no captions" — not Hangfire's <c>FromJson&lt;IngestJobOptions&gt;("{…}")</c>), then its
/// warnings (an ingest's resolution warning, what `rscapret ingest` warned about). Everything from the job is
/// HTML-encoded. Job parameters this project writes are plain JSON (<see cref="SetParameter(PerformContext?, string, object)"/>),
/// so Hangfire's own parameter table shows no <c>$type</c> either.
/// </summary>
public static partial class JobPageView
{
    /// <summary>A job parameter holding the job's warnings (a JSON array of strings).</summary>
    public const string WarningsParameter = "rscapret.warnings";

    /// <summary>The jobs' parameter names in words (others are shown by their name).</summary>
    private static readonly Dictionary<string, string> Labels = new()
    {
        ["path"] = "scene path", ["modelDirectory"] = "model folder", ["options"] = "options", ["root"] = "archive",
        ["pattern"] = "file pattern", ["configPath"] = "config", ["outDir"] = "output folder", ["datasetDirectory"] = "dataset",
        ["split"] = "split", ["modelId"] = "model id",
    };

    /// <summary>The arguments a person reads: name and value, without the worker's own (context, cancellation token).</summary>
    public static IReadOnlyList<(string Name, string Value)> Arguments(Job job)
    {
        var parameters = job.Method.GetParameters();
        var rows = new List<(string, string)>();
        for (var i = 0; i < parameters.Length && i < job.Args.Count; i++)
        {
            var type = parameters[i].ParameterType;
            if (type == typeof(PerformContext) || type == typeof(CancellationToken) || type == typeof(IJobCancellationToken)) continue;
            var name = parameters[i].Name ?? $"argument {i + 1}";
            rows.Add((Labels.GetValueOrDefault(name, name), Describe(job.Args[i])));
        }
        return rows;
    }

    private static string Describe(object? value) => value switch
    {
        null => "(none: the defaults)",
        IngestJobOptions options => Describe(options),
        string s => s,
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };

    /// <summary>Ingest options in words: the settings that differ from the defaults, or "defaults".</summary>
    public static string Describe(IngestJobOptions options)
    {
        var defaults = new IngestJobOptions();
        var said = new List<string>();
        foreach (var p in typeof(IngestJobOptions).GetProperties(BindingFlags.Public | BindingFlags.Instance))
        {
            if (p.GetIndexParameters().Length > 0 || p.Name == "EqualityContract") continue;
            var (value, fallback) = (p.GetValue(options), p.GetValue(defaults));
            if (Equals(value, fallback)) continue;
            said.Add(p.Name switch
            {
                nameof(IngestJobOptions.Bands) => $"bands {value}",
                nameof(IngestJobOptions.Gsd) => string.Create(CultureInfo.InvariantCulture, $"GSD {value} m/px"),
                nameof(IngestJobOptions.Overlap) => string.Create(CultureInfo.InvariantCulture, $"overlap {value} px"),
                nameof(IngestJobOptions.MaxNodata) => string.Create(CultureInfo.InvariantCulture, $"at most {(double)value! * 100:0.#} % nodata per tile"),
                nameof(IngestJobOptions.NoCrs) => "scenes without a CRS allowed",
                nameof(IngestJobOptions.Captions) => (bool)value! ? "captions" : "no captions",
                nameof(IngestJobOptions.StacItem) => $"STAC item {value}",
                nameof(IngestJobOptions.SkipOutOfRange) => "scenes outside the model's resolution range skipped",
                nameof(IngestJobOptions.Force) => "a new version even if unchanged (force)",
                nameof(IngestJobOptions.FollowLinksOutside) => "links to folders outside the archive followed",
                _ when value is bool b => b ? Words(p.Name) : $"not {Words(p.Name)}",
                _ => $"{Words(p.Name)} {Describe(value)}",
            });
        }
        return said.Count == 0 ? "defaults (the model's tiling, captions on)" : string.Join("; ", said);
    }

    [GeneratedRegex("(?<=[a-z0-9])(?=[A-Z])")]
    private static partial Regex WordBoundary();

    private static string Words(string pascal) => WordBoundary().Replace(pascal, " ").ToLowerInvariant();

    /// <summary>The job's warnings: its <see cref="WarningsParameter"/>, and an ingest report's warning.</summary>
    public static IReadOnlyList<string> Warnings(IDictionary<string, string>? properties)
    {
        var warnings = new List<string>();
        if (properties is null) return warnings;
        if (properties.TryGetValue(WarningsParameter, out var json) && Read<string[]>(json) is { } stored) warnings.AddRange(stored);
        if (properties.TryGetValue(IngestSceneJob.ReportParameter, out var report) && Read<IngestJobReport>(report)?.Result is { Warning: { } w } && !warnings.Contains(w))
            warnings.Add(w);
        return warnings;
    }

    public static string Html(IReadOnlyList<(string Name, string Value)> arguments, IReadOnlyList<string> warnings)
    {
        static string E(string? s) => WebUtility.HtmlEncode(s ?? "");
        var sb = new StringBuilder("<div class=\"rscapret-job\" style=\"margin: 12px 0\">");
        if (arguments.Count > 0)
        {
            sb.Append("<h3>Arguments</h3><table class=\"table table-condensed\"><tbody>");
            foreach (var (name, value) in arguments)
                sb.Append("<tr><th style=\"width: 20%\">").Append(E(name)).Append("</th><td style=\"word-break: break-all\">").Append(E(value)).Append("</td></tr>");
            sb.Append("</tbody></table>");
        }
        if (warnings.Count > 0)
        {
            sb.Append("<h3>Warnings</h3>");
            foreach (var w in warnings) sb.Append("<div class=\"alert alert-warning\" style=\"margin-bottom: 6px\">").Append(E(w)).Append("</div>");
        }
        return sb.Append("</div>").ToString();
    }

    /// <summary>Registers the section with the dashboard's job details page (above the progress bar and a scan's decisions).</summary>
    public static IGlobalConfiguration UseJobPages(IGlobalConfiguration config) =>
        config.UseJobDetailsRenderer(5, dto =>
        {
            var arguments = dto.JobDetails.Job is { } job ? Arguments(job) : [];
            var warnings = Warnings(dto.JobDetails.Properties);
            return arguments.Count == 0 && warnings.Count == 0 ? null : new NonEscapedString(Html(arguments, warnings));
        });

    /// <summary>
    /// Stores a job parameter as plain JSON: Hangfire's own serializer options all write <c>$type</c> (which the
    /// dashboard then shows); this project's readers know the types.
    /// </summary>
    public static void SetParameter(IStorageConnection connection, string jobId, string name, object value) =>
        connection.SetJobParameter(jobId, name, Newtonsoft.Json.JsonConvert.SerializeObject(value, PlainJson));

    private static readonly Newtonsoft.Json.JsonSerializerSettings PlainJson = new() { TypeNameHandling = Newtonsoft.Json.TypeNameHandling.None };

    /// <inheritdoc cref="SetParameter(IStorageConnection, string, string, object)"/>
    public static void SetParameter(PerformContext? context, string name, object value)
    {
        if (context is not null) SetParameter(context.Connection, context.BackgroundJob.Id, name, value);
    }

    private static T? Read<T>(string? json) where T : class
    {
        if (string.IsNullOrEmpty(json)) return null;
        try { return SerializationHelper.Deserialize<T>(json, SerializationOption.User); }
        catch (Exception e) when (e is not OutOfMemoryException) { return null; }   // another version's shape: not shown
    }
}
