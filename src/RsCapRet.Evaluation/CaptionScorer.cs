using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace RsCapRet.Evaluation;

/// <summary>Where the official coco-caption jars are, when the user has them (Java needed).</summary>
public sealed record MetricOptions(
    [property: Core.Configuration.EnvironmentVariable("RSCAPRET_METEOR_JAR")] string? MeteorJar = null,
    [property: Core.Configuration.EnvironmentVariable("RSCAPRET_SPICE_JAR")] string? SpiceJar = null)
{
    public MetricOptions() : this(null, null) { }

    public static MetricOptions FromEnvironment() => Core.Configuration.EnvironmentSettings.Load<MetricOptions>();
}

/// <summary>Corpus and per-image scores; METEOR/SPICE are absent (not approximated) without their jars.</summary>
public sealed record CaptionScores(IReadOnlyDictionary<string, double> Corpus,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, double>> PerImage, IReadOnlyList<string> NotAvailable)
{
    public string ToJson()
    {
        var root = new JsonObject
        {
            ["corpus"] = new JsonObject(Corpus.Select(kv => KeyValuePair.Create(kv.Key, (JsonNode?)JsonValue.Create(kv.Value)))),
            ["per_image"] = new JsonObject(PerImage.Select(kv => KeyValuePair.Create(kv.Key,
                (JsonNode?)new JsonObject(kv.Value.Select(m => KeyValuePair.Create(m.Key, (JsonNode?)JsonValue.Create(m.Value))))))),
        };
        if (NotAvailable.Count > 0) root["not_available"] = new JsonArray(NotAvailable.Select(n => (JsonNode?)JsonValue.Create(n)).ToArray());
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}

/// <summary>The coco-caption evaluation: PTB tokenisation, then BLEU-1..4, ROUGE_L, CIDEr (and METEOR, SPICE via jars).</summary>
public static class CaptionScorer
{
    public static CaptionScores Score(IReadOnlyDictionary<string, IReadOnlyList<string>> refs, IReadOnlyDictionary<string, string> cands,
        MetricOptions? options = null)
    {
        options ??= new MetricOptions();
        var missingCands = refs.Keys.Where(k => !cands.ContainsKey(k)).ToList();
        var missingRefs = cands.Keys.Where(k => !refs.ContainsKey(k)).ToList();
        if (missingCands.Count > 0) throw new ArgumentException($"No candidate for image ids: {string.Join(", ", missingCands.Take(10))}{(missingCands.Count > 10 ? ", ..." : "")}");
        if (missingRefs.Count > 0) throw new ArgumentException($"No references for image ids: {string.Join(", ", missingRefs.Take(10))}{(missingRefs.Count > 10 ? ", ..." : "")}");
        var empty = cands.Where(kv => string.IsNullOrWhiteSpace(kv.Value)).Select(kv => kv.Key).ToList();
        if (empty.Count > 0) throw new ArgumentException($"Empty candidate caption for image ids: {string.Join(", ", empty.Take(10))}");
        var noRefs = refs.Where(kv => kv.Value.Count == 0).Select(kv => kv.Key).ToList();
        if (noRefs.Count > 0) throw new ArgumentException($"Image ids with an empty reference list: {string.Join(", ", noRefs.Take(10))}");

        var ids = refs.Keys.ToList(); // coco iterates the ground-truth keys
        var tokRefs = ids.Select(id => (IReadOnlyList<string>)refs[id].Select(PtbTokenizer.Tokenize).ToList()).ToList();
        var tokCands = ids.Select(id => PtbTokenizer.Tokenize(cands[id])).ToList();

        var (bleu, bleuPer) = CaptionMetrics.Bleu(tokCands, tokRefs);
        var rouge = CaptionMetrics.RougeL(tokCands, tokRefs);
        var cider = CaptionMetrics.Cider(tokCands, tokRefs);
        var corpus = new Dictionary<string, double>();
        for (var k = 0; k < 4; k++) corpus[$"Bleu_{k + 1}"] = bleu[k];
        corpus["ROUGE_L"] = rouge.Average();
        corpus["CIDEr"] = cider.Average();
        var per = ids.Select((id, i) => (id, scores: new Dictionary<string, double>
        {
            ["Bleu_1"] = bleuPer[i][0], ["Bleu_2"] = bleuPer[i][1], ["Bleu_3"] = bleuPer[i][2], ["Bleu_4"] = bleuPer[i][3],
            ["ROUGE_L"] = rouge[i], ["CIDEr"] = cider[i],
        })).ToDictionary(x => x.id, x => x.scores);

        var notAvailable = new List<string>();
        if (options.MeteorJar is { } meteor)
        {
            var (corpusMeteor, perMeteor) = CocoJars.Meteor(meteor, tokCands, tokRefs);
            corpus["METEOR"] = corpusMeteor;
            for (var i = 0; i < ids.Count; i++) per[ids[i]]["METEOR"] = perMeteor[i];
        }
        else notAvailable.Add("METEOR (set RSCAPRET_METEOR_JAR to coco-caption's meteor-1.5.jar; needs Java)");
        if (options.SpiceJar is { } spice)
        {
            var (corpusSpice, perSpice) = CocoJars.Spice(spice, ids, tokCands, tokRefs);
            corpus["SPICE"] = corpusSpice;
            for (var i = 0; i < ids.Count; i++) per[ids[i]]["SPICE"] = perSpice[i];
        }
        else notAvailable.Add("SPICE (set RSCAPRET_SPICE_JAR to coco-caption's spice-1.0.jar; needs Java)");
        return new CaptionScores(corpus, per.ToDictionary(kv => kv.Key, kv => (IReadOnlyDictionary<string, double>)kv.Value), notAvailable);
    }

    /// <summary>
    /// `score-captions`: R.json maps image id -> list of references, C.json maps image id -> candidate string.
    /// </summary>
    public static CaptionScores ScoreFiles(string refsPath, string candsPath, MetricOptions? options = null)
    {
        var refs = ReadJson<Dictionary<string, List<string>>>(refsPath, "an object mapping image ids to lists of reference captions");
        var cands = ReadJson<Dictionary<string, string>>(candsPath, "an object mapping image ids to one candidate caption");
        try
        {
            return Score(refs.ToDictionary(kv => kv.Key, kv => (IReadOnlyList<string>)(kv.Value ?? [])), cands, options);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{refsPath} / {candsPath}: {e.Message}", e);
        }
    }

    private static T ReadJson<T>(string path, string shape)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: does not exist", path);
        try
        {
            return JsonSerializer.Deserialize<T>(File.ReadAllText(path)) ?? throw new FormatException($"{path}: is empty; expected {shape}");
        }
        catch (JsonException e)
        {
            throw new FormatException($"{path}: not {shape}: {e.Message}", e);
        }
    }
}

/// <summary>Bridges to the official coco-caption METEOR 1.5 and SPICE 1.0 jars (run with java).</summary>
internal static class CocoJars
{
    private static void CheckJar(string jar)
    {
        if (!File.Exists(jar)) throw new FileNotFoundException($"{jar}: jar does not exist", jar);
    }

    /// <summary>As coco's meteor.py: `java -jar -Xmx2G meteor-1.5.jar - - -stdio -l en -norm`, SCORE then EVAL lines.</summary>
    public static (double Corpus, double[] PerImage) Meteor(string jar, IReadOnlyList<string> cands, IReadOnlyList<IReadOnlyList<string>> refs)
    {
        CheckJar(jar);
        var psi = new ProcessStartInfo("java", ["-jar", "-Xmx2G", jar, "-", "-", "-stdio", "-l", "en", "-norm"])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
            WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(jar))!,
        };
        using var p = Process.Start(psi) ?? throw new InvalidOperationException("java could not be started for METEOR");
        var stats = new List<string>();
        for (var i = 0; i < cands.Count; i++)
        {
            var hyp = cands[i].Replace("|||", "").Replace("  ", " ");
            p.StandardInput.WriteLine("SCORE ||| " + string.Join(" ||| ", refs[i]) + " ||| " + hyp);
            p.StandardInput.Flush();
            stats.Add(p.StandardOutput.ReadLine() ?? throw new InvalidOperationException("METEOR stopped answering: " + p.StandardError.ReadToEnd()));
        }
        p.StandardInput.WriteLine("EVAL ||| " + string.Join(" ||| ", stats));
        p.StandardInput.Flush();
        var per = new double[cands.Count];
        for (var i = 0; i < cands.Count; i++) per[i] = double.Parse(p.StandardOutput.ReadLine()!.Trim(), CultureInfo.InvariantCulture);
        var corpus = double.Parse(p.StandardOutput.ReadLine()!.Trim(), CultureInfo.InvariantCulture);
        p.StandardInput.Close();
        p.WaitForExit(10_000);
        return (corpus, per);
    }

    /// <summary>As coco's spice.py: JSON in, `java -jar -Xmx8G spice-1.0.jar in.json -cache dir -out out.json -subset -silent`.</summary>
    public static (double Corpus, double[] PerImage) Spice(string jar, IReadOnlyList<string> ids, IReadOnlyList<string> cands, IReadOnlyList<IReadOnlyList<string>> refs)
    {
        CheckJar(jar);
        var dir = Directory.CreateTempSubdirectory("rscapret-spice-");
        try
        {
            var input = Path.Combine(dir.FullName, "in.json");
            var output = Path.Combine(dir.FullName, "out.json");
            File.WriteAllText(input, JsonSerializer.Serialize(ids.Select((id, i) => new { image_id = id, test = cands[i], refs = refs[i] })));
            var psi = new ProcessStartInfo("java", ["-jar", "-Xmx8G", jar, input, "-cache", Path.Combine(dir.FullName, "cache"), "-out", output, "-subset", "-silent"])
            {
                RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false,
                WorkingDirectory = Path.GetDirectoryName(Path.GetFullPath(jar))!,
            };
            using var p = Process.Start(psi) ?? throw new InvalidOperationException("java could not be started for SPICE");
            var err = p.StandardError.ReadToEndAsync();
            p.WaitForExit();
            if (p.ExitCode != 0) throw new InvalidOperationException($"SPICE failed ({p.ExitCode}): {err.Result}");
            using var doc = JsonDocument.Parse(File.ReadAllText(output));
            var byId = doc.RootElement.EnumerateArray().ToDictionary(
                e => e.GetProperty("image_id").ToString(), e => e.GetProperty("scores").GetProperty("All").GetProperty("f").GetDouble());
            var per = ids.Select(id => byId[id]).ToArray();
            return (per.Average(), per);
        }
        finally { dir.Delete(true); }
    }
}
