using System.Globalization;
using System.Text.Json.Nodes;

namespace RsCapRet.Bench;

/// <summary>
/// Two runs of the same benchmarks side by side, from their JSON lines (whole outputs are fine: other lines are
/// skipped). A figure agrees when each run's median lies within the other run's min..max, or when the two medians are
/// within 0.1 % (figures that do not vary from round to round, such as a peak RSS). Exit code 0 when every
/// shared headline figure (each side's value and each ratio) agrees, 1 otherwise; further figures (percentiles,
/// stage times, memory) are shown but do not decide it.
/// </summary>
public static class CompareRuns
{
    public static int Run(string[] args)
    {
        if (args.Length != 2)
        {
            Console.Error.WriteLine("usage: RsCapRet.Bench compare FIRST SECOND   (files holding the benchmarks' output or JSON lines)");
            return 2;
        }
        var (first, second) = (Read(args[0]), Read(args[1]));
        int compared = 0, disagreements = 0, extraDisagreements = 0;
        foreach (var (benchmark, a) in first)
        {
            if (!second.TryGetValue(benchmark, out var b))
            {
                Console.WriteLine($"{benchmark}: only in {args[0]}");
                continue;
            }
            Console.WriteLine($"== {benchmark}: median [min .. max], first run | second run");
            var fa = Figures(a);
            var fb = Figures(b);
            foreach (var (name, (sa, extra)) in fa)
            {
                if (!fb.TryGetValue(name, out var other)) continue;
                var sb = other.Summary;
                // Figures that do not vary (a peak RSS, a file size) agree within 0.1 %, below what anything here resolves.
                var agree = sa.Contains(sb.Median) && sb.Contains(sa.Median)
                            || Math.Abs(sa.Median - sb.Median) <= 0.001 * Math.Max(Math.Abs(sa.Median), Math.Abs(sb.Median));
                if (!extra) compared++;
                if (!agree && extra) extraDisagreements++;
                else if (!agree) disagreements++;
                Console.WriteLine(FormattableString.Invariant(
                    $"  {(agree ? "agree   " : extra ? "differ  " : "DISAGREE")} {name}: {Rounds.Fmt(sa.Median)} [{Rounds.Fmt(sa.Min)} .. {Rounds.Fmt(sa.Max)}] | {Rounds.Fmt(sb.Median)} [{Rounds.Fmt(sb.Min)} .. {Rounds.Fmt(sb.Max)}]"));
            }
        }
        Console.WriteLine($"{compared} headline figures compared, {disagreements} disagree; {extraDisagreements} further figures differ");
        return disagreements == 0 && compared > 0 ? 0 : 1;
    }

    /// <summary>The last JSON line of each benchmark in a file.</summary>
    private static Dictionary<string, JsonObject> Read(string path)
    {
        var runs = new Dictionary<string, JsonObject>();
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith("{\"benchmark\"", StringComparison.Ordinal)) continue;
            if (JsonNode.Parse(line) is JsonObject o && o["benchmark"]?.GetValue<string>() is { } name) runs[name] = o;
        }
        return runs;
    }

    /// <summary>Every side's headline and further figures, and every ratio, by a name that is unique within the run.</summary>
    private static Dictionary<string, (Summary Summary, bool Extra)> Figures(JsonObject run)
    {
        var figures = new Dictionary<string, (Summary, bool)>();
        foreach (var side in run["sides"]?.AsArray() ?? [])
        {
            var name = side!["name"]!.GetValue<string>();
            figures[$"{name} ({side["unit"]!.GetValue<string>()})"] = (Of(side), false);
            foreach (var extra in side["extras"]?.AsArray() ?? [])
                figures[$"{name}: {extra!["name"]!.GetValue<string>()} ({extra["unit"]!.GetValue<string>()})"] = (Of(extra), true);
        }
        foreach (var ratio in run["ratios"]?.AsArray() ?? [])
            figures[$"ratio {ratio!["name"]!.GetValue<string>()}"] = (Of(ratio), false);
        return figures;
    }

    private static Summary Of(JsonNode node)
    {
        static double D(JsonNode? n) => n is null ? double.NaN : n.GetValue<double>();
        return new Summary(D(node["median"]), D(node["min"]), D(node["max"]),
            (node["rounds"]?.AsArray() ?? []).Select(D).ToArray());
    }
}
