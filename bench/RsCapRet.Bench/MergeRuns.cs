using System.Text.Json.Nodes;

namespace RsCapRet.Bench;

/// <summary>
/// Runs of the same benchmark in separate processes (each with its own rounds) merged into one JSON line per
/// benchmark, as if their rounds had been one run's: every side's, further figure's and ratio's per-round values are
/// concatenated in file order and their median, min and max recomputed. What a process carries for its whole life
/// (the JIT's and allocator's state, a database's caches after its load) then varies from round to round and shows
/// in the spread, instead of deciding a whole run's median. The first file's other fields (environment) are kept,
/// with "processes" added.
/// </summary>
public static class MergeRuns
{
    public static int Run(string[] args)
    {
        if (args.Length < 2)
        {
            Console.Error.WriteLine("usage: RsCapRet.Bench merge FILE FILE...   (outputs of the same benchmark run in separate processes)");
            return 2;
        }
        var runs = args.Select(path => (Path: path, Lines: CompareRuns.Read(path))).ToList();
        foreach (var (path, lines) in runs)
            if (lines.Count == 0) { Console.Error.WriteLine($"{path}: no benchmark JSON line (did that run fail?)"); return 1; }
        foreach (var benchmark in runs[0].Lines.Keys)
        {
            var parts = runs.Select(r => r.Lines.GetValueOrDefault(benchmark)).ToList();
            if (parts.Any(p => p is null))
            {
                Console.Error.WriteLine($"{benchmark}: missing from {string.Join(", ", runs.Where(r => !r.Lines.ContainsKey(benchmark)).Select(r => r.Path))}");
                return 1;
            }
            var merged = (JsonObject)parts[0]!.DeepClone();
            foreach (var (list, name) in new[] { ("sides", "name"), ("ratios", "name") })
                foreach (var node in merged[list]?.AsArray() ?? [])
                {
                    var key = node![name]!.GetValue<string>();
                    var matching = parts.Select(p => (p![list]?.AsArray() ?? []).FirstOrDefault(n => n![name]!.GetValue<string>() == key)).ToList();
                    MergeInto((JsonObject)node, matching);
                    foreach (var extra in node["extras"]?.AsArray() ?? [])
                    {
                        var extraKey = extra!["name"]!.GetValue<string>();
                        MergeInto((JsonObject)extra, matching.Select(m => (m?["extras"]?.AsArray() ?? []).FirstOrDefault(e => e!["name"]!.GetValue<string>() == extraKey)).ToList());
                    }
                }
            merged["processes"] = runs.Count;
            merged["rounds"] = parts.Sum(p => p!["rounds"]?.GetValue<int>() ?? 0);
            Console.WriteLine($"{benchmark}: {runs.Count} processes merged");
            Console.WriteLine(merged.ToJsonString());
        }
        return 0;
    }

    // A figure missing from one process (a round that did not produce it) is left out, as Extras() does within a run.
    private static void MergeInto(JsonObject target, IReadOnlyList<JsonNode?> parts)
    {
        // A round that measured nothing is null in the JSON (NaN is not JSON) and stays out.
        var rounds = parts.SelectMany(p => p?["rounds"]?.AsArray() ?? []).Where(n => n is not null).Select(n => n!.GetValue<double>()).ToArray();
        var s = Summary.Of(rounds);
        target["median"] = double.IsFinite(s.Median) ? s.Median : null;
        target["min"] = double.IsFinite(s.Min) ? s.Min : null;
        target["max"] = double.IsFinite(s.Max) ? s.Max : null;
        target["rounds"] = new JsonArray(rounds.Select(r => (JsonNode)r).ToArray());
    }
}
