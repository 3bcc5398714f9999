using System.Globalization;
using System.Text.Json.Nodes;

namespace RsCapRet.Bench;

/// <summary>
/// Two runs of the same benchmarks side by side, from their JSON lines (whole outputs are fine: other lines are
/// skipped). A figure agrees when each run's median lies within the other run's min..max, or when the two medians are
/// within 0.1 % (figures that do not vary from round to round, such as a peak RSS). When both runs measured the
/// calibration work each round (<see cref="Calibration"/>), a side's times and rates are also compared calibrated:
/// each round's value set against that round's calibration time, which takes out how fast the machine was then. A
/// figure that disagrees raw but agrees calibrated — with neither calibrated range wider, relative to its median,
/// than the raw one, so the agreement does not come from noise the calibration added — is marked so; ratios need no calibration (both sides share a
/// round). Exit code 0 when every shared headline figure (each side's value and each ratio) agrees, raw or
/// calibrated, 1 otherwise; further figures (percentiles, stage times, memory) are shown but do not decide it.
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
        int compared = 0, disagreements = 0, extraDisagreements = 0, rawOnly = 0;
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
            Summary? calA = fa.TryGetValue(CalibrationKey, out var x) ? x.Summary : null;
            Summary? calB = fb.TryGetValue(CalibrationKey, out var y) ? y.Summary : null;
            if (calA is not null && calB is not null)
                Console.WriteLine($"  machine  {Calibration.Name}: {Pair(calA, calB)} ms");
            foreach (var (name, (sa, extra, unit)) in fa)
            {
                if (name == CalibrationKey || !fb.TryGetValue(name, out var other)) continue;
                var sb = other.Summary;
                var agree = Agree(sa, sb);
                // Raw disagreement, calibrated agreement: the machine's speed moved between the runs, not the figure.
                Summary? ka = null, kb = null;
                if (!agree && !extra && unit is not null && calA is not null && calB is not null)
                    (ka, kb) = (CalibratedOf(sa, calA, unit), CalibratedOf(sb, calB, unit));
                // Only where calibration takes noise out: dividing by a noisy calibration widens ranges, and wider
                // ranges agree more easily, so a calibrated range may not be wider (relative to its median) than its raw one.
                var calibratedAgree = ka is not null && kb is not null && Agree(ka, kb)
                                      && RelativeSpread(ka) <= RelativeSpread(sa) && RelativeSpread(kb) <= RelativeSpread(sb);
                if (!extra) compared++;
                if (!agree && extra) extraDisagreements++;
                else if (!agree && !calibratedAgree) disagreements++;
                else if (!agree) rawOnly++;
                var verdict = agree ? "agree   " : extra ? "differ  " : calibratedAgree ? "agree*  " : "DISAGREE";
                var calibrated = ka is not null && kb is not null ? $"; calibrated {Pair(ka, kb)}" : "";
                Console.WriteLine($"  {verdict} {name}: {Pair(sa, sb)}{calibrated}");
            }
        }
        Console.WriteLine($"{compared} headline figures compared, {disagreements} disagree" +
                          (rawOnly > 0 ? $" (and {rawOnly} more disagree raw but agree calibrated, marked agree*)" : "") +
                          $"; {extraDisagreements} further figures differ");
        return disagreements == 0 && compared > 0 ? 0 : 1;
    }

    private static readonly string CalibrationKey = $"{Calibration.Name} (ms)";

    // Figures that do not vary (a peak RSS, a file size) agree within 0.1 %, below what anything here resolves.
    private static bool Agree(Summary a, Summary b) =>
        a.Contains(b.Median) && b.Contains(a.Median)
        || Math.Abs(a.Median - b.Median) <= 0.001 * Math.Max(Math.Abs(a.Median), Math.Abs(b.Median));

    /// <summary>"median [min .. max] | median [min .. max]" of the first and the second run.</summary>
    private static string Pair(Summary a, Summary b) =>
        FormattableString.Invariant($"{Rounds.Fmt(a.Median)} [{Rounds.Fmt(a.Min)} .. {Rounds.Fmt(a.Max)}] | {Rounds.Fmt(b.Median)} [{Rounds.Fmt(b.Min)} .. {Rounds.Fmt(b.Max)}]");

    private static double RelativeSpread(Summary s) => (s.Max - s.Min) / Math.Abs(s.Median);

    /// <summary>Each round's value against that round's calibration; null for a unit that is neither a time nor a rate.</summary>
    private static Summary? CalibratedOf(Summary figure, Summary calibration, string unit)
    {
        if (figure.Rounds.Length != calibration.Rounds.Length || figure.Rounds.Length == 0) return null;
        var values = figure.Rounds.Zip(calibration.Rounds, (v, c) => Calibration.Calibrated(unit, v, c)).ToArray();
        return values.All(v => v is not null) ? Summary.Of(values.Select(v => v!.Value)) : null;
    }

    /// <summary>The last JSON line of each benchmark in a file.</summary>
    internal static Dictionary<string, JsonObject> Read(string path)
    {
        var runs = new Dictionary<string, JsonObject>();
        foreach (var line in File.ReadLines(path))
        {
            if (!line.StartsWith("{\"benchmark\"", StringComparison.Ordinal)) continue;
            if (JsonNode.Parse(line) is JsonObject o && o["benchmark"]?.GetValue<string>() is { } name) runs[name] = o;
        }
        return runs;
    }

    /// <summary>
    /// Every side's headline and further figures, and every ratio, by a name that is unique within the run: their
    /// summary, whether they are further figures, and a side's unit (null for a ratio or an extra).
    /// </summary>
    private static Dictionary<string, (Summary Summary, bool Extra, string? Unit)> Figures(JsonObject run)
    {
        var figures = new Dictionary<string, (Summary, bool, string?)>();
        foreach (var side in run["sides"]?.AsArray() ?? [])
        {
            var name = side!["name"]!.GetValue<string>();
            var unit = side["unit"]!.GetValue<string>();
            figures[$"{name} ({unit})"] = (Of(side), false, unit);
            foreach (var extra in side["extras"]?.AsArray() ?? [])
                figures[$"{name}: {extra!["name"]!.GetValue<string>()} ({extra["unit"]!.GetValue<string>()})"] = (Of(extra), true, null);
        }
        foreach (var ratio in run["ratios"]?.AsArray() ?? [])
            figures[$"ratio {ratio!["name"]!.GetValue<string>()}"] = (Of(ratio), false, null);
        return figures;
    }

    private static Summary Of(JsonNode node)
    {
        static double D(JsonNode? n) => n is null ? double.NaN : n.GetValue<double>();
        return new Summary(D(node["median"]), D(node["min"]), D(node["max"]),
            (node["rounds"]?.AsArray() ?? []).Select(D).ToArray());
    }
}
