using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using RsCapRet.Storage;

namespace RsCapRet.Queries;

/// <summary>
/// Issue 29: a calibrated probability that a tile shows what a text query asks for, from the cosine score and the
/// query's own score statistics against a fixed background sample of validation images. It is a logistic regression
/// p = σ(a + b·s + c·z), s = 1 − distance, z = (s − m_q) / sd_q, where m_q and sd_q are the mean and standard
/// deviation of the query's scores against the background vectors (stored with the calibration). Fitted on
/// validation data only (`rscapret calibrate`), kept in the model folder as relevance.json beside rscapret.json.
/// For a fixed query it is increasing in the score (b, c ≥ 0 are checked at load), so the rows at or above a
/// relevance form a prefix of the ranking.
/// </summary>
public sealed class RelevanceCalibration
{
    public const string FileName = "relevance.json";
    public const string Format = "rscapret-relevance/1";
    /// <summary>What results carry when the model folder has no calibration.</summary>
    public const string MissingNote = "relevance is not available: the model folder has no relevance.json (run `rscapret calibrate --model DIR --dataset DIR`)";
    /// <summary>What results of an image or tile query carry: the calibration is for text queries.</summary>
    public const string NotTextNote = "relevance is calibrated for text queries; image and tile searches rank by score only";
    public const double GoodMatch = 0.5;

    public double Intercept { get; }
    public double ScoreWeight { get; }
    public double ZWeight { get; }
    /// <summary>Background image vectors (rows), L2-normalised, dimension = the model's shared dimension.</summary>
    public float[][] Background { get; }
    /// <summary>The heads' SHA-256 of the model it was fitted for (null: not recorded).</summary>
    public string? HeadsSha256 { get; init; }
    /// <summary>The whole JSON as read or written (how it was fitted, held-out reliability).</summary>
    public JsonObject Document { get; init; } = new();

    public RelevanceCalibration(double intercept, double scoreWeight, double zWeight, float[][] background)
    {
        if (!double.IsFinite(intercept) || !double.IsFinite(scoreWeight) || !double.IsFinite(zWeight))
            throw new InvalidDataException("relevance coefficients must be finite numbers");
        if (scoreWeight < 0 || zWeight < 0)
            throw new InvalidDataException($"relevance must grow with the score; the weights are {scoreWeight} (score) and {zWeight} (z)");
        if (zWeight > 0 && background.Length < 2) throw new InvalidDataException("relevance with a z weight needs at least two background vectors");
        if (background.Length > 0 && background.Any(b => b.Length != background[0].Length)) throw new InvalidDataException("background vectors differ in length");
        (Intercept, ScoreWeight, ZWeight, Background) = (intercept, scoreWeight, zWeight, background);
    }

    /// <summary>The query's background statistics (mean, standard deviation of its scores).</summary>
    public (double Mean, double Sd) QueryStatistics(float[] query)
    {
        if (Background.Length == 0) return (0, 1);
        if (query.Length != Background[0].Length)
            throw new ArgumentException($"the query vector has {query.Length} dimensions; the calibration's background has {Background[0].Length}");
        double sum = 0, sumSq = 0;
        foreach (var b in Background)
        {
            var s = (double)Dot(b, query);
            sum += s; sumSq += s * s;
        }
        var mean = sum / Background.Length;
        var variance = Math.Max(0, sumSq / Background.Length - mean * mean);
        return (mean, Math.Max(Math.Sqrt(variance), 1e-6));
    }

    /// <summary>A float dot product in SIMD lanes (the background is 128 × 256: this is most of relevance's cost).</summary>
    private static float Dot(float[] a, float[] b)
    {
        var width = System.Numerics.Vector<float>.Count;
        var acc = System.Numerics.Vector<float>.Zero;
        var i = 0;
        for (; i <= a.Length - width; i += width)
            acc += new System.Numerics.Vector<float>(a, i) * new System.Numerics.Vector<float>(b, i);
        var sum = System.Numerics.Vector.Sum(acc);
        for (; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <summary>The share of matching pairs among those it was fitted on (relevance.json's fitted_on), or null where not recorded.</summary>
    public double? BaseRate =>
        Document["fitted_on"] is JsonObject f && f["pairs"] is JsonValue pairs && f["matching_pairs"] is JsonValue matching && pairs.GetValue<double>() > 0
            ? matching.GetValue<double>() / pairs.GetValue<double>() : null;

    /// <summary>
    /// The relevance at which the chat answers a yes/no question yes (issue 34): the fitted base rate, where a pair's
    /// odds of matching equal those of a question asked at even odds (Bayes' prior shift from the fit's 3 % of
    /// matching pairs to 1:1); <see cref="GoodMatch"/> where the file does not record its counts.
    /// </summary>
    public double YesAt => BaseRate ?? GoodMatch;

    public double Probability(double score, double mean, double sd) =>
        Sigmoid(Intercept + ScoreWeight * score + ZWeight * (score - mean) / sd);

    /// <summary>A function from a hit's cosine distance to its relevance, for one query vector.</summary>
    public Func<double, double> ForQuery(float[] query)
    {
        var (mean, sd) = QueryStatistics(query);
        return distance => Probability(1 - distance, mean, sd);
    }

    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>
    /// The calibration in a model folder: null when there is none; an exception with the file's path when it is
    /// unreadable or fitted for other weights (heads' SHA-256 differs), so a stale file is never used silently.
    /// </summary>
    public static RelevanceCalibration? Load(string modelDirectory)
    {
        var path = Path.Combine(modelDirectory, FileName);
        if (!File.Exists(path)) return null;
        RelevanceCalibration calibration;
        try { calibration = Parse(File.ReadAllText(path)); }
        catch (Exception e) when (e is JsonException or InvalidDataException or FormatException or InvalidOperationException or KeyNotFoundException or NullReferenceException)
        {
            throw new InvalidDataException($"{path}: not a relevance calibration ({e.Message}); fit it again with `rscapret calibrate`", e);
        }
        if (calibration.HeadsSha256 is { } sha && File.Exists(Path.Combine(modelDirectory, RsCapRet.Model.RsCapRetConfig.FileName)))
        {
            var actual = RsCapRet.Model.RsCapRetModel.HeadsSha256(modelDirectory);
            if (!string.Equals(sha, actual, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException($"{path} was fitted for other weights (heads {sha[..12]}…, this folder's {actual[..12]}…); fit it again with `rscapret calibrate`");
        }
        return calibration;
    }

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, (DateTime Written, RelevanceCalibration? Calibration, string? Note)> Cache = new();

    /// <summary>
    /// The calibration of a model folder, or null with the reason (no file; a file that cannot be used): never
    /// throws, so a search without relevance still answers. Cached per folder until relevance.json changes.
    /// </summary>
    public static (RelevanceCalibration? Calibration, string? Note) LoadOrExplain(string? modelDirectory)
    {
        if (modelDirectory is null) return (null, MissingNote);
        var path = Path.Combine(modelDirectory, FileName);
        var written = File.Exists(path) ? File.GetLastWriteTimeUtc(path) : DateTime.MinValue;
        if (Cache.TryGetValue(modelDirectory, out var cached) && cached.Written == written) return (cached.Calibration, cached.Note);
        (RelevanceCalibration?, string?) result;
        try { result = Load(modelDirectory) is { } c ? (c, null) : (null, MissingNote); }
        catch (Exception e) when (e is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            result = (null, "relevance is not available: " + e.Message);
        }
        Cache[modelDirectory] = (written, result.Item1, result.Item2);
        return result;
    }

    public static RelevanceCalibration Parse(string json)
    {
        var doc = JsonNode.Parse(json)?.AsObject() ?? throw new InvalidDataException("empty document");
        if ((string?)doc["format"] != Format) throw new InvalidDataException($"format is '{(string?)doc["format"]}', expected '{Format}'");
        var c = doc["coefficients"]!.AsObject();
        var bg = doc["background"]!.AsObject();
        var count = (int)bg["count"]!;
        var dim = (int)bg["dim"]!;
        var bytes = Convert.FromBase64String((string)bg["float16_base64"]!);
        if (bytes.Length != count * dim * 2) throw new InvalidDataException($"background holds {bytes.Length} bytes; {count} × {dim} float16 expected");
        var vectors = new float[count][];
        for (var i = 0; i < count; i++)
        {
            vectors[i] = new float[dim];
            for (var d = 0; d < dim; d++) vectors[i][d] = (float)BitConverter.ToHalf(bytes, (i * dim + d) * 2);
        }
        return new RelevanceCalibration((double)c["intercept"]!, (double)c["score"]!, (double)c["z"]!, vectors)
        {
            HeadsSha256 = (string?)doc["model"]?["heads_sha256"],
            Document = doc,
        };
    }

    /// <summary>The JSON written to relevance.json: coefficients, background, and <paramref name="about"/> (how it was fitted, reliability).</summary>
    public static string ToJson(double intercept, double scoreWeight, double zWeight, IReadOnlyList<float[]> background,
        ModelIdentity? model, JsonObject about)
    {
        var dim = background.Count == 0 ? 0 : background[0].Length;
        var bytes = new byte[background.Count * dim * 2];
        for (var i = 0; i < background.Count; i++)
            for (var d = 0; d < dim; d++) BitConverter.TryWriteBytes(bytes.AsSpan((i * dim + d) * 2), (Half)background[i][d]);
        var doc = new JsonObject
        {
            ["format"] = Format,
            ["what"] = "p(tile shows what the text asks for) = sigmoid(intercept + score * s + z * (s - mean_q) / sd_q); s = 1 - cosine distance; mean_q, sd_q: the query's scores against the background vectors",
            ["model"] = model is null ? null : new JsonObject { ["name"] = model.Name, ["version"] = model.Version, ["heads_sha256"] = model.HeadsSha256 },
            ["coefficients"] = new JsonObject { ["intercept"] = Math.Round(intercept, 6), ["score"] = Math.Round(scoreWeight, 6), ["z"] = Math.Round(zWeight, 6) },
        };
        foreach (var (k, v) in about.ToList()) { about.Remove(k); doc[k] = v; }
        doc["background"] = new JsonObject { ["count"] = background.Count, ["dim"] = dim, ["float16_base64"] = Convert.ToBase64String(bytes) };
        return doc.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}

/// <summary>A search's hits with their relevance (null when not available, with <see cref="Note"/> saying why).</summary>
public sealed record RankedHits(IReadOnlyList<TileHit> Hits, IReadOnlyList<double?> Relevance, string? Note, int Offset = 0)
{
    /// <summary>Whether any hit reaches <see cref="RelevanceCalibration.GoodMatch"/>; null when relevance is not available.</summary>
    public bool? GoodMatch => Relevance.All(r => r is null) ? null : Relevance.Any(r => r >= RelevanceCalibration.GoodMatch);

    /// <summary>Rows that met --min-relevance / min_relevance; when none did, the nearest row is kept and this is true.</summary>
    public bool BelowMinimum { get; init; }

    /// <summary>The --min-relevance / min_relevance applied, if any.</summary>
    public double? Minimum { get; init; }

    /// <summary>Each row's hot cells (search --localize, API localize=1); null when not asked for.</summary>
    public SearchLocalizer.Outcome? Localized { get; init; }

    /// <summary>Whether row <paramref name="i"/> is shown marked: below 0.5, or kept only as the nearest below the minimum.</summary>
    public bool Weak(int i) => BelowMinimum || Relevance[i] is { } r && r < RelevanceCalibration.GoodMatch;

    public static RankedHits Without(IReadOnlyList<TileHit> hits, string note, int offset = 0) =>
        new(hits, hits.Select(_ => (double?)null).ToList(), note, offset);

    /// <summary>Hits of a text query scored with the calibration of <paramref name="modelDirectory"/> (or the reason there is none).</summary>
    public static RankedHits Score(IReadOnlyList<TileHit> hits, float[] query, string? modelDirectory, int offset = 0)
    {
        var (calibration, note) = RelevanceCalibration.LoadOrExplain(modelDirectory);
        return calibration is null ? Without(hits, note ?? RelevanceCalibration.MissingNote, offset) : Score(hits, query, calibration, offset);
    }

    public static RankedHits Score(IReadOnlyList<TileHit> hits, float[] query, RelevanceCalibration? calibration, int offset = 0)
    {
        if (calibration is null) return Without(hits, RelevanceCalibration.MissingNote, offset);
        var of = calibration.ForQuery(query);
        return new RankedHits(hits, hits.Select(h => (double?)Math.Round(of(h.Distance), 4)).ToList(), null, offset);
    }

    /// <summary>
    /// Keeps the hits whose relevance is at least <paramref name="minimum"/>; when none is, the nearest hit stays,
    /// with <see cref="BelowMinimum"/> set (the caller shows it marked). Without relevance nothing is filtered.
    /// </summary>
    public RankedHits AtLeast(double? minimum)
    {
        if (minimum is not { } min || Relevance.All(r => r is null)) return this;
        var keep = Enumerable.Range(0, Hits.Count).Where(i => Relevance[i] >= min).ToList();
        if (keep.Count == 0 && Hits.Count > 0) return this with { Hits = [Hits[0]], Relevance = [Relevance[0]], BelowMinimum = true, Minimum = min };
        return this with { Hits = keep.Select(i => Hits[i]).ToList(), Relevance = keep.Select(i => Relevance[i]).ToList(), Minimum = min };
    }

    /// <summary>A relevance threshold from user input (0..1), or null when not given.</summary>
    public static double? ParseMinimum(string? s)
    {
        if (string.IsNullOrWhiteSpace(s)) return null;
        return double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && v is >= 0 and <= 1
            ? v : throw new FormatException($"min_relevance must be a number between 0 and 1, got '{s}'.");
    }
}
