using System.Text.Json;
using System.Text.Json.Serialization;

namespace RsCapRet.Jobs;

/// <summary>
/// A recurring job from jobs/*.json: which job, when (cron, UTC), on which queue, with which arguments.
/// Kept as data so operators change schedules without rebuilding.
/// </summary>
public sealed record JobDefinition(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("job")] string Job,
    [property: JsonPropertyName("cron")] string Cron,
    [property: JsonPropertyName("queue")] string Queue,
    [property: JsonPropertyName("args")] IReadOnlyDictionary<string, string> Args)
{
    public static readonly IReadOnlySet<string> KnownJobs = new HashSet<string> { "index-archive", "ingest-scene", "train", "train-clip", "evaluate" };

    /// <summary>
    /// The cron of a job that runs only when someone asks (issue 29): it is not registered with Hangfire, so the
    /// dashboard lists no "31 February" schedule shown as DISABLED; an earlier registration under its id is removed.
    /// </summary>
    public const string ManualCron = "manual";

    public bool IsManual => string.Equals(Cron.Trim(), ManualCron, StringComparison.OrdinalIgnoreCase);

    public string Arg(string name) => Args.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v)
        ? v
        : throw new FormatException($"Job definition '{Id}' lacks the argument '{name}'.");

    /// <summary>The `rscapret` command that does this job's work when asked (paths as the definition writes them).</summary>
    public string Command()
    {
        string A(string name) => Args.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v) ? Quoted(v) : $"<{name}>";
        return Job switch
        {
            "index-archive" => $"rscapret index-archive {A("root")} --pattern {A("glob")} --model {A("model")}",
            "ingest-scene" => $"rscapret ingest {A("path")} --model {A("model")}",
            "train" => $"rscapret train --config {A("config")} --out {A("out")}",
            "train-clip" => $"rscapret train-clip --config {A("config")} --out {A("out")}",
            "evaluate" => $"rscapret evaluate --model {A("model")} --dataset {A("dataset")} --split {A("split")} --out {A("out")}",
            _ => $"rscapret {Job}",
        };
    }

    /// <summary>A shell word: as it is when it is plain, else in single quotes.</summary>
    private static string Quoted(string value) =>
        value.All(c => char.IsAsciiLetterOrDigit(c) || "/._-+:=,@".Contains(c)) ? value : "'" + value.Replace("'", "'\\''") + "'";

    /// <summary>Reads and validates every *.json in <paramref name="directory"/>, sorted by file name.</summary>
    public static IReadOnlyList<JobDefinition> LoadDirectory(string directory)
    {
        if (!Directory.Exists(directory)) throw new DirectoryNotFoundException($"Job definition folder '{directory}' does not exist.");
        var list = new List<JobDefinition>();
        foreach (var file in Directory.EnumerateFiles(directory, "*.json").Order(StringComparer.Ordinal))
            list.Add(Load(file));
        var dup = list.GroupBy(d => d.Id).FirstOrDefault(g => g.Count() > 1);
        if (dup != null) throw new FormatException($"Two job definitions in '{directory}' share the id '{dup.Key}'.");
        return list;
    }

    public static JobDefinition Load(string file)
    {
        JobDefinition? def;
        try
        {
            def = JsonSerializer.Deserialize<JobDefinition>(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new FormatException($"Job definition '{file}' is not valid JSON: {e.Message}", e);
        }
        if (def is null || string.IsNullOrWhiteSpace(def.Id) || string.IsNullOrWhiteSpace(def.Job) || string.IsNullOrWhiteSpace(def.Cron))
            throw new FormatException($"Job definition '{file}' needs 'id', 'job' and 'cron'.");
        if (!KnownJobs.Contains(def.Job))
            throw new FormatException($"Job definition '{file}' names an unknown job '{def.Job}' (known: {string.Join(", ", KnownJobs.Order())}).");
        if (!JobQueues.All.Contains(def.Queue))
            throw new FormatException($"Job definition '{file}' names an unknown queue '{def.Queue}' (known: {string.Join(", ", JobQueues.All)}).");
        if (!def.IsManual && IsNeverCron(def.Cron))
            throw new FormatException($"Job definition '{file}' has a cron that never fires ('{def.Cron}'): write \"cron\": \"{ManualCron}\" for a job that runs only when asked.");
        if (!def.IsManual && !IsValidCron(def.Cron))
            throw new FormatException($"Job definition '{file}' has an invalid cron expression '{def.Cron}'.");
        return def with { Args = def.Args ?? new Dictionary<string, string>() };
    }

    /// <summary>Day 30 or 31 of February only (Hangfire's Cron.Never() is "0 0 31 2 *"): a schedule that never comes.</summary>
    private static bool IsNeverCron(string cron)
    {
        var f = cron.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length is not (5 or 6)) return false;
        var (day, month) = f.Length == 5 ? (f[2], f[3]) : (f[3], f[4]);
        return day is "30" or "31" && month is "2" or "FEB" or "feb" or "Feb";
    }

    // Shape check only (5 or 6 fields of cron characters); Hangfire parses the expression fully when the
    // recurring job is registered and rejects what this lets through.
    private static bool IsValidCron(string cron)
    {
        var fields = cron.Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return fields.Length is 5 or 6 && fields.All(f => f.All(c => char.IsAsciiLetterOrDigit(c) || "*/,-?LW#".Contains(c)));
    }
}

/// <summary>
/// Queues: "model" holds the heavy model work (ingestion, training, evaluation) for workers on GPU machines;
/// "default" holds light work (archive scans) that any worker runs.
/// </summary>
public static class JobQueues
{
    public const string Model = "model";
    public const string Default = "default";
    public static readonly IReadOnlyList<string> All = [Model, Default];
}
