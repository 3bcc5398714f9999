using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RsCapRet.Bench;

/// <summary>A further figure of a side in one round (peak RSS, a stage's share, a percentile).</summary>
public sealed record Metric(string Name, string Unit, double Value);

/// <summary>What one side measured in one round: its headline value and any further figures.</summary>
public sealed record Sample(double Value, IReadOnlyList<Metric>? Extras = null);

/// <summary>One thing a benchmark measures once per round; the sides take turns within every round.</summary>
public sealed record Side(string Name, string Unit, Func<Task<Sample>> MeasureAsync);

/// <summary>A side's samples over the measured rounds (warm-up excluded).</summary>
public sealed record SideResult(string Name, string Unit, IReadOnlyList<Sample> Samples)
{
    public Summary Headline => Summary.Of(Samples.Select(s => s.Value));

    /// <summary>The further figures by name, in first-seen order; a figure missing in a round is left out of that round.</summary>
    public IEnumerable<(string Name, string Unit, Summary Summary)> Extras() =>
        Samples.SelectMany(s => s.Extras ?? []).Select(m => (m.Name, m.Unit)).Distinct()
            .Select(k => (k.Name, k.Unit, Summary.Of(Samples.SelectMany(s => s.Extras ?? []).Where(m => m.Name == k.Name).Select(m => m.Value))));
}

/// <summary>The ratio of two sides' headline values, taken round by round, so both figures share each round's conditions.</summary>
public sealed record RatioSpec(string Numerator, string Denominator)
{
    public string Name => $"{Numerator} / {Denominator}";
}

/// <summary>Median with the range of the per-round values: the spread a second run's median should fall in.</summary>
public sealed record Summary(double Median, double Min, double Max, double[] Rounds)
{
    public static Summary Of(IEnumerable<double> values)
    {
        var xs = values.ToArray();
        if (xs.Length == 0) return new Summary(double.NaN, double.NaN, double.NaN, xs);
        var s = xs.Order().ToArray();
        var median = s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
        return new Summary(median, s[0], s[^1], xs);
    }

    public bool Contains(double x) => x >= Min && x <= Max;
}

/// <summary>
/// The measuring discipline every benchmark shares: warm-up rounds that are thrown away, then N rounds in which
/// every side is measured once, in the same order (A, B, A, B, ...). Machine noise that lasts longer than a round
/// hits both sides of a round alike, so the per-round ratios hold up where one sequential measurement per side
/// does not.
/// </summary>
public static class Rounds
{
    public static async Task<IReadOnlyList<SideResult>> RunAsync(IReadOnlyList<Side> sides, int warmup, int rounds)
    {
        // Every round starts with the same fixed work, so a run says how fast the machine was round by round, and
        // compare can set two runs' figures against their machines' speeds (Calibration).
        sides = [Calibration.Side, .. sides];
        Console.WriteLine($"method: {warmup} warm-up round(s), then {rounds} rounds; each round measures, in this order: {string.Join(", ", sides.Select(s => s.Name))}");
        for (var w = 0; w < warmup; w++)
            foreach (var side in sides)
            {
                var sample = await MeasureAsync(side);
                Console.WriteLine(FormattableString.Invariant($"  warm-up {w + 1}/{warmup}  {side.Name}: {Fmt(sample.Value)} {side.Unit} (discarded)"));
            }
        var samples = sides.Select(_ => new List<Sample>()).ToArray();
        for (var r = 0; r < rounds; r++)
            for (var i = 0; i < sides.Count; i++)
            {
                var sample = await MeasureAsync(sides[i]);
                samples[i].Add(sample);
                Console.WriteLine(FormattableString.Invariant($"  round {r + 1}/{rounds}  {sides[i].Name}: {Fmt(sample.Value)} {sides[i].Unit}"));
            }
        return sides.Select((s, i) => new SideResult(s.Name, s.Unit, samples[i])).ToList();
    }

    // Every side starts from a collected heap, so one side's garbage is not collected on the next side's clock.
    private static async Task<Sample> MeasureAsync(Side side)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return await side.MeasureAsync();
    }

    /// <summary>
    /// Repeats <paramref name="unit"/> (which returns how many items it did) until at least <paramref name="minSeconds"/>
    /// have passed, so a round is long enough for the clock and the scheduler to matter little. Returns items/s.
    /// </summary>
    public static (double PerSecond, int Items, double Seconds) Throughput(Func<int> unit, double minSeconds)
    {
        var sw = Stopwatch.StartNew();
        var items = 0;
        do items += unit();
        while (sw.Elapsed.TotalSeconds < minSeconds);
        var s = sw.Elapsed.TotalSeconds;
        return (items / s, items, s);
    }

    /// <summary>The p-th percentile of <paramref name="xs"/> (nearest rank: the smallest value with p % of them at or below it).</summary>
    public static double Percentile(IReadOnlyCollection<double> xs, int p)
    {
        var s = xs.Order().ToArray();
        return s[Math.Clamp((int)Math.Ceiling(p / 100.0 * s.Length) - 1, 0, s.Length - 1)];
    }

    internal static string Fmt(double x) =>
        double.IsNaN(x) ? "n/a" : x == Math.Round(x) && Math.Abs(x) < 1e9 ? x.ToString("F0", CultureInfo.InvariantCulture)
        : Math.Abs(x) >= 100 ? x.ToString("F1", CultureInfo.InvariantCulture)
        : Math.Abs(x) >= 1 ? x.ToString("F2", CultureInfo.InvariantCulture) : x.ToString("F3", CultureInfo.InvariantCulture);
}

/// <summary>
/// A fixed amount of CPU work on two threads (each a dense float kernel over an array that fits the L2 cache, then a
/// pass over 32 MB), measured at the start of every round (the fastest of three, after a 200 ms pause). It is not the benchmark: it is the machine's speed in that
/// round. A virtual machine drifts as a whole between runs (10-25 % on the development machine, docs/benchmarks.md), more than a
/// run's own rounds spread, so two runs' absolute figures can disagree while the machine, not the code, changed.
/// <c>compare</c> divides each round's time (or multiplies its rate) by that round's calibration time and compares
/// those calibrated figures beside the raw ones.
/// </summary>
public static class Calibration
{
    public const string Name = "calibration: fixed CPU work (2 threads)";

    public static Side Side { get; } = new(Name, "ms", () => Task.FromResult(new Sample(Measure())));

    private static readonly float[][] Buffers = [new float[8_000_000], new float[8_000_000]];

    // The machine's speed, not what the last side left behind: after a pause (libtorch's OpenMP threads spin for a
    // while after their last parallel region, and would share the cores with this), the fastest of three runs.
    private static double Measure()
    {
        Thread.Sleep(200);
        return Enumerable.Range(0, 3).Min(_ => MeasureOnce());
    }

    private static double MeasureOnce()
    {
        var sw = Stopwatch.StartNew();
        var sums = new double[2];
        Parallel.For(0, 2, new ParallelOptions { MaxDegreeOfParallelism = 2 }, t =>
        {
            // Compute: 64 KB of floats, 800 passes of a multiply-add chain (13 M dependent multiply-adds).
            var a = new float[16_384];
            for (var i = 0; i < a.Length; i++) a[i] = i % 7 * 0.25f;
            float acc = 0;
            for (var pass = 0; pass < 800; pass++)
                for (var i = 0; i < a.Length; i++) acc = acc * 0.999f + a[i] * 1.0001f;
            // Memory: write and read 32 MB.
            var b = Buffers[t];
            for (var i = 0; i < b.Length; i++) b[i] = i;
            double sum = 0;
            for (var i = 0; i < b.Length; i += 4) sum += b[i];
            sums[t] = acc + sum;
        });
        GC.KeepAlive(sums);
        return sw.Elapsed.TotalMilliseconds;
    }

    /// <summary>
    /// A headline value set against its round's calibration: a rate (unit ending in "/s") times the calibration ms, a
    /// time ("ms", "s", "ms ...") divided by it; other units (sizes, counts) are left as they are (null).
    /// </summary>
    public static double? Calibrated(string unit, double value, double calibrationMs) =>
        unit.EndsWith("/s", StringComparison.Ordinal) ? value * calibrationMs / 100
        : unit == "s" || unit == "ms" || unit.StartsWith("ms ", StringComparison.Ordinal) ? value / calibrationMs * 100
        : null;
}

/// <summary>
/// What a benchmark prints at the end: the environment, per side the median with min and max and the per-round
/// values, the per-round ratios and their median, facts measured outside the rounds, and one JSON line with the
/// same numbers (the last line of the output) for scripts and CI artefacts; <c>compare</c> reads those lines.
/// </summary>
public sealed class BenchReport(string benchmark, BenchEnvironment environment)
{
    public string Benchmark { get; } = benchmark;
    public BenchEnvironment Environment { get; } = environment;
    /// <summary>The options the run used, defaults included.</summary>
    public Dictionary<string, object?> Options { get; } = new();
    /// <summary>Figures that are not per-round measurements (recall, tile counts, data loading), in the text and the JSON.</summary>
    public List<(string Name, object? Value)> Facts { get; } = [];
    /// <summary>Lines printed after the tables (interpretation, what overlaps with what).</summary>
    public List<string> Notes { get; } = [];

    public void Print(IReadOnlyList<SideResult> sides, IReadOnlyList<RatioSpec> ratios, int warmup, int rounds)
    {
        Environment.Finish();
        Console.WriteLine();
        Console.WriteLine($"== {Benchmark}: {rounds} rounds after {warmup} warm-up; median [min .. max] | per round ==");
        var width = Math.Max(24, sides.SelectMany(s => s.Extras().Select(e => e.Name.Length + 2).Append(s.Name.Length)).Concat(ratios.Select(r => r.Name.Length)).DefaultIfEmpty(0).Max() + 2);
        foreach (var side in sides)
        {
            Row(side.Name, side.Unit, side.Headline, width);
            foreach (var (name, unit, summary) in side.Extras()) Row("  " + name, unit, summary, width);
        }
        var ratioSummaries = ratios.Select(r => (r, Ratio(sides, r))).ToList();
        if (ratioSummaries.Count > 0)
        {
            Console.WriteLine("ratios, round by round:");
            foreach (var (spec, summary) in ratioSummaries) Row(spec.Name, "", summary, width);
        }
        foreach (var (name, value) in Facts) Console.WriteLine($"{name}: {FormatFact(value)}");
        foreach (var note in Notes) Console.WriteLine(note);
        Console.WriteLine(Environment.Describe());
        // Relaxed escaping keeps "+" and "'" readable in names; the line is still valid JSON.
        Console.WriteLine(Json(sides, ratioSummaries, warmup, rounds).ToJsonString(new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
    }

    private static void Row(string name, string unit, Summary s, int width) =>
        Console.WriteLine(FormattableString.Invariant(
            $"{name.PadRight(width)} {unit,-9} {Rounds.Fmt(s.Median),9} [{Rounds.Fmt(s.Min)} .. {Rounds.Fmt(s.Max)}] | {string.Join(' ', s.Rounds.Select(Rounds.Fmt))}"));

    public static Summary Ratio(IReadOnlyList<SideResult> sides, RatioSpec spec)
    {
        var a = sides.Single(s => s.Name == spec.Numerator).Samples;
        var b = sides.Single(s => s.Name == spec.Denominator).Samples;
        return Summary.Of(a.Zip(b, (x, y) => x.Value / y.Value));
    }

    private static string FormatFact(object? v) => v switch
    {
        null => "not available",
        double d => Rounds.Fmt(d),
        _ => Convert.ToString(v, CultureInfo.InvariantCulture) ?? "",
    };

    private JsonObject Json(IReadOnlyList<SideResult> sides, IReadOnlyList<(RatioSpec Spec, Summary Summary)> ratios, int warmup, int rounds)
    {
        static JsonObject S(Summary s) => new()
        {
            ["median"] = Num(s.Median), ["min"] = Num(s.Min), ["max"] = Num(s.Max),
            ["rounds"] = new JsonArray(s.Rounds.Select(x => (JsonNode?)Num(x)).ToArray()),
        };
        var sideNodes = new JsonArray();
        foreach (var side in sides)
        {
            var node = S(side.Headline);
            node["name"] = side.Name;
            node["unit"] = side.Unit;
            var extras = new JsonArray();
            foreach (var (name, unit, summary) in side.Extras())
            {
                var e = S(summary);
                e["name"] = name;
                e["unit"] = unit;
                extras.Add(e);
            }
            node["extras"] = extras;
            sideNodes.Add(node);
        }
        var ratioNodes = new JsonArray();
        foreach (var (spec, summary) in ratios)
        {
            var node = S(summary);
            node["name"] = spec.Name;
            ratioNodes.Add(node);
        }
        var facts = new JsonObject();
        foreach (var (name, value) in Facts) facts[name] = value is double d ? Num(d) : value is null ? null : JsonValue.Create(Convert.ToString(value, CultureInfo.InvariantCulture));
        var options = new JsonObject();
        foreach (var (k, v) in Options)
            options[k] = v switch
            {
                null => null,
                bool b => JsonValue.Create(b),
                int i => JsonValue.Create(i),
                double d => Num(d),
                _ => JsonValue.Create(Convert.ToString(v, CultureInfo.InvariantCulture)),
            };
        return new JsonObject
        {
            ["benchmark"] = Benchmark,
            ["warmup_rounds"] = warmup,
            ["rounds"] = rounds,
            ["options"] = options,
            ["environment"] = Environment.ToJson(),
            ["sides"] = sideNodes,
            ["ratios"] = ratioNodes,
            ["facts"] = facts,
        };
    }

    // NaN is not JSON; "not measured" is null.
    private static JsonValue? Num(double x) => double.IsFinite(x) ? JsonValue.Create(Math.Round(x, 6)) : null;
}

/// <summary>A malformed or incomplete command-line option.</summary>
public sealed class BenchArgsException(string message) : ArgumentException(message);

/// <summary>Command-line options of a benchmark; a malformed number is an error, never a silent default.</summary>
public sealed class BenchArgs(string[] args)
{
    public bool Has(string name) => args.Contains(name);

    public string? String(string name)
    {
        var i = Array.IndexOf(args, name);
        if (i < 0) return null;
        return i + 1 < args.Length ? args[i + 1] : throw new BenchArgsException($"{name} needs a value");
    }

    public string String(string name, string dflt) => String(name) ?? dflt;

    public int Int(string name, int dflt) =>
        String(name) is { } s ? int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) ? v : throw new BenchArgsException($"{name} expects a whole number, got '{s}'") : dflt;

    public double Double(string name, double dflt) =>
        String(name) is { } s ? double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) ? v : throw new BenchArgsException($"{name} expects a number, got '{s}'") : dflt;

    public int[] Ints(string name, string dflt) =>
        String(name, dflt).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(s => int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v > 0 ? v : throw new BenchArgsException($"{name} expects positive whole numbers separated by commas, got '{s}'")).ToArray();

    /// <summary>--warmup (default 1) and --rounds (default 5), shared by every benchmark.</summary>
    public (int Warmup, int Rounds) RoundCounts()
    {
        var rounds = Int("--rounds", 5);
        var warmup = Int("--warmup", 1);
        if (rounds < 1 || warmup < 0) throw new BenchArgsException("--rounds must be at least 1 and --warmup at least 0");
        return (warmup, rounds);
    }
}
