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

    public string Arg(string name) => Args.TryGetValue(name, out var v) && !string.IsNullOrWhiteSpace(v)
        ? v
        : throw new FormatException($"Job definition '{Id}' lacks the argument '{name}'.");

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
        if (!IsValidCron(def.Cron))
            throw new FormatException($"Job definition '{file}' has an invalid cron expression '{def.Cron}'.");
        return def with { Args = def.Args ?? new Dictionary<string, string>() };
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
