using System.Text.Json;
using RsCapRet.Core;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using static TorchSharp.torch;

namespace RsCapRet.Training;

public sealed record EvaluationReport(string Model, string Dataset, string Split, int Images, int Texts,
    CaptionScores Captions, RecallAtK TextToImage, RecallAtK ImageToText, double Seconds)
{
    /// <summary>The generated caption of each image id.</summary>
    [System.Text.Json.Serialization.JsonIgnore] public IReadOnlyDictionary<string, string> Candidates { get; init; } = new Dictionary<string, string>();
    /// <summary>How the captions were decoded: "greedy" or "beam N".</summary>
    public string Decoding { get; init; } = "greedy";
    /// <summary>The text→image ranking measured: the product's search mode (<see cref="HybridRanking.Name"/>).</summary>
    public string Retrieval { get; init; } = HybridRanking.Name(RetrievalMode.Vector);
    /// <summary>Dihedral views averaged into each image vector (1: none; test-time augmentation otherwise).</summary>
    public int ImageViews { get; init; } = 1;
    /// <summary>The vector ranking's text→image figures when <see cref="TextToImage"/> measured another mode.</summary>
    public RecallAtK? VectorTextToImage { get; init; }
}

/// <summary>
/// Which search path <c>evaluate</c> measures text→image on. Hybrid needs the caption text-match scores of PostgreSQL
/// (the product's own SQL, <c>CatalogStore.CaptionScoresAsync</c>): texts × captions.
/// </summary>
public sealed record RetrievalOptions(RetrievalMode Mode, double CaptionWeight = HybridRanking.DefaultCaptionWeight,
    Func<IReadOnlyList<string>, IReadOnlyList<string>, double[,]>? CaptionScores = null);

/// <summary>Retrieval of a CLIP dual encoder on a split (no captions: CLIP does not generate text).</summary>
public sealed record ClipRetrievalReport(string Model, string Dataset, string Split, int Images, int Texts,
    RecallAtK TextToImage, RecallAtK ImageToText, double Seconds);

/// <summary>
/// Benchmark evaluation of an RS-CapRet model on a Karpathy split: captions (greedy or beam) scored with the
/// coco-caption metrics against all references, and retrieval Recall@1/5/10 in both directions over every caption.
/// </summary>
public static class ModelEvaluator
{
    public static EvaluationReport Evaluate(RsCapRetModel model, LlamaTextTokenizer tokenizer, ImagePreprocessor pre,
        string modelName, string datasetDirectory, string split, GenerationOptions generation, MetricOptions metrics,
        Action<string>? log = null, string? outDir = null, Action<int, int>? progress = null, RetrievalOptions? retrieval = null,
        int views = 1)
    {
        if (views is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(views), views, "test-time views must be 1..8 (the dihedral views)");
        retrieval ??= new RetrievalOptions(HybridRanking.DefaultMode);
        if (retrieval.Mode == RetrievalMode.Hybrid && retrieval.CaptionScores is null)
            throw new ArgumentException("hybrid retrieval needs the caption text-match scores (a catalogue database)");
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(datasetDirectory));
        var images = KarpathyDataset.Load(datasetDirectory, name, new HashSet<string> { split });
        if (images.Count == 0) throw new ArgumentException($"{datasetDirectory}: no images in split '{split}'");
        model.eval();
        using var _ = no_grad();
        var candidates = new Dictionary<string, string>();
        var imageVecs = new List<float[]>();
        for (var s = 0; s < images.Count; s += 32)
        {
            using var scope = NewDisposeScope();
            var batch = images.Skip(s).Take(32).ToList();
            var pixels = pre.Process(batch.Select(b => RasterImage.ReadRgb(b.ImagePath)).ToList());
            var pooled = model.PooledImage(pixels);   // one backbone pass for captions and vectors
            var ids = model.GenerateCaptionsFromPooled(pooled, generation);
            for (var i = 0; i < batch.Count; i++) candidates[batch[i].ImageId] = tokenizer.Decode(ids[i]).Trim();
            // Test-time augmentation: the mean of the dihedral views' vectors (views 1: the identity's, from the same pass).
            var vecs = (views > 1 ? model.ImageEmbeddingViews(pixels, views) : model.ImageEmbeddingFromPooled(pooled)).cpu();
            for (var i = 0; i < batch.Count; i++) imageVecs.Add(vecs[i].data<float>().ToArray());
            log?.Invoke($"captioned {Math.Min(s + 32, images.Count)}/{images.Count}");
            progress?.Invoke(Math.Min(s + 32, images.Count), images.Count);
        }
        // A caption the model left empty still gets scored (as zero), rather than failing the whole run.
        var scored = candidates.ToDictionary(kv => kv.Key, kv => kv.Value.Length == 0 ? "<empty>" : kv.Value);
        var captionScores = CaptionScorer.Score(images.ToDictionary(i => i.ImageId, i => i.Captions), scored, metrics);

        var texts = images.SelectMany((im, idx) => im.Captions.Select(c => (Image: idx, Text: c))).ToList();
        // Each distinct text is embedded once: datasets repeat captions word for word across images (UCM: many), and
        // the same text padded to another batch length can differ in the last bits, which would decide their ties in
        // image->text ranking by rounding instead of in the target's favour.
        var distinct = texts.Select(t => t.Text).Distinct().ToList();
        var vectorOf = new Dictionary<string, float[]>(distinct.Count);
        for (var s = 0; s < distinct.Count; s += 128)
        {
            using var scope = NewDisposeScope();
            var chunk = distinct.Skip(s).Take(128).ToList();
            var (ids, mask) = TokenBatch.PadRight(chunk.Select(t => tokenizer.EncodeForRetrieval(t)).ToList());
            var vecs = model.RetEmbedding(ids, mask).cpu();
            for (var b = 0; b < chunk.Count; b++) vectorOf[chunk[b]] = vecs[b].data<float>().ToArray();
        }
        var textVecs = texts.Select(t => vectorOf[t.Text]).ToList();
        var sim = new float[textVecs.Count, imageVecs.Count];
        for (var t = 0; t < textVecs.Count; t++)
            for (var i = 0; i < imageVecs.Count; i++)
            {
                float dot = 0;
                var a = textVecs[t]; var b = imageVecs[i];
                for (var d = 0; d < a.Length; d++) dot += a[d] * b[d];
                sim[t, i] = dot;
            }
        var labels = texts.Select(t => t.Image).ToList();
        var vectorTextToImage = RetrievalMetrics.TextToImage(sim, labels);
        var textToImage = vectorTextToImage;
        if (retrieval.Mode == RetrievalMode.Hybrid)
        {
            log?.Invoke("hybrid: caption text-match scores from the catalogue database");
            var captionList = images.Select(im => candidates[im.ImageId]).ToList();
            var textScores = retrieval.CaptionScores!(distinct, captionList);
            var textIndex = distinct.Select((t, i) => (t, i)).ToDictionary(x => x.t, x => x.i);
            textToImage = HybridTextToImage(sim, texts.Select(t => textIndex[t.Text]).ToList(), textScores, labels, retrieval.CaptionWeight);
        }
        var report = new EvaluationReport(modelName, name, split, images.Count, texts.Count, captionScores,
            textToImage, RetrievalMetrics.ImageToText(sim, labels), sw.Elapsed.TotalSeconds)
        {
            Candidates = candidates,
            Decoding = generation.BeamWidth > 1 ? $"beam {generation.BeamWidth}" : "greedy",
            Retrieval = HybridRanking.Name(retrieval.Mode, retrieval.CaptionWeight),
            VectorTextToImage = retrieval.Mode == RetrievalMode.Vector ? null : vectorTextToImage,
            ImageViews = views,
        };
        if (outDir != null) WriteFiles(outDir, report, [], Markdown(report));
        return report;
    }

    /// <summary>
    /// Text→image recall of the hybrid ranking: for each text, the images ordered as the product's hybrid search
    /// orders tiles (<see cref="HybridRanking.Order"/>; cosine distance 1 − similarity, image index as the id).
    /// </summary>
    public static RecallAtK HybridTextToImage(float[,] similarity, IReadOnlyList<int> textRow, double[,] textScores,
        IReadOnlyList<int> textToImage, double captionWeight)
    {
        int texts = similarity.GetLength(0), images = similarity.GetLength(1);
        var ids = Enumerable.Range(0, images).Select(i => (long)i).ToArray();
        var ranks = new int[texts];
        Parallel.For(0, texts, t =>
        {
            var distances = new double[images];
            var scores = new double[images];
            for (var i = 0; i < images; i++) { distances[i] = 1 - (double)similarity[t, i]; scores[i] = textScores[textRow[t], i]; }
            var order = HybridRanking.Order(distances, scores, ids, captionWeight);
            ranks[t] = Array.IndexOf(order, textToImage[t]);
        });
        return RetrievalMetrics.FromRanks(ranks);
    }

    /// <summary>captions.json + scores.json (when a captioning model was evaluated), report.json and report.md.</summary>
    public static void WriteFiles(string outDir, EvaluationReport? report, IReadOnlyList<ClipRetrievalReport> clips, string markdown)
    {
        Directory.CreateDirectory(outDir);
        var indented = new JsonSerializerOptions { WriteIndented = true };
        if (report is not null)
        {
            File.WriteAllText(Path.Combine(outDir, "captions.json"), JsonSerializer.Serialize(report.Candidates, indented));
            File.WriteAllText(Path.Combine(outDir, "scores.json"), report.Captions.ToJson());
        }
        File.WriteAllText(Path.Combine(outDir, "report.json"), JsonSerializer.Serialize(new { rscapret = report, clip = clips }, indented));
        File.WriteAllText(Path.Combine(outDir, "report.md"), markdown);
    }

    /// <summary>
    /// The published rows for the dataset, read from the shared reference/published-results.md (test splits of the
    /// papers); says so when the file is missing instead of printing remembered figures.
    /// </summary>
    private static string Published(string dataset)
    {
        string path;
        try { path = Path.Combine(RsCapRet.Core.RepositoryPaths.SharedDirectory(), "reference", "published-results.md"); }
        catch (DirectoryNotFoundException) { return "\nPublished figures: not available (no checkout to find the shared reference folder from).\n"; }
        if (!File.Exists(path)) return $"\nPublished figures: not available ({path} does not exist).\n";
        var rows = PublishedResults.ForDataset(File.ReadAllText(path), dataset);
        return rows.Length == 0 ? "" : $"\n## Published figures for comparison (from {path})\n{rows}";
    }

    /// <summary>One report for a captioning model and/or CLIP dual encoders evaluated on the same split.</summary>
    public static string Markdown(EvaluationReport? report, IReadOnlyList<ClipRetrievalReport> clips, string split)
    {
        if (clips.Count == 0) return report is null ? throw new ArgumentException("nothing was evaluated") : Markdown(report);
        var name = report?.Dataset ?? clips[0].Dataset;
        var rows = new System.Text.StringBuilder();
        if (report is not null) rows.AppendLine(RetrievalRow($"{report.Model} (RS-CapRet [RET])", report.TextToImage, report.ImageToText));
        foreach (var c in clips) rows.AppendLine(RetrievalRow($"{c.Model} (CLIP dual encoder)", c.TextToImage, c.ImageToText));
        var head = report is null ? $"# Evaluation: retrieval on {name} ({split})\n\n{clips[0].Images} images, {clips[0].Texts} captions.\n" : Markdown(report);
        return head + $"""

            ## Retrieval side by side ({name}, {split})

            | model | t→i R@1 | t→i R@5 | t→i R@10 | t→i mR | i→t R@1 | i→t R@5 | i→t R@10 | i→t mR |
            | --- | --- | --- | --- | --- | --- | --- | --- | --- |
            {rows.ToString().TrimEnd()}

            Published CLIP rows (paper Tables II and IV, RemoteCLIP) are not listed: none of them has been checked
            against the papers here, and this report prints only verified published figures.
            """;
    }

    private static string RetrievalRow(string model, RecallAtK t2i, RecallAtK i2t) => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"| {model} | {t2i.R1:F2} | {t2i.R5:F2} | {t2i.R10:F2} | {t2i.Mean:F2} | {i2t.R1:F2} | {i2t.R5:F2} | {i2t.R10:F2} | {i2t.Mean:F2} |");

    public static string Markdown(EvaluationReport r)
    {
        var c = r.Captions.Corpus;
        string M(string k) => c.TryGetValue(k, out var v) ? v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        return $"""
            # Evaluation: {r.Model} on {r.Dataset} ({r.Split})

            {r.Images} images, {r.Texts} captions, captions decoded {r.Decoding}, {r.Seconds:F0} s.

            | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE_L | CIDEr | SPICE |
            | --- | --- | --- | --- | --- | --- | --- | --- |
            | {M("Bleu_1")} | {M("Bleu_2")} | {M("Bleu_3")} | {M("Bleu_4")} | {M("METEOR")} | {M("ROUGE_L")} | {M("CIDEr")} | {M("SPICE")} |

            Retrieval measured: {r.Retrieval}{(r.ImageViews > 1 ? $"; image vectors the mean of {r.ImageViews} dihedral views (test-time augmentation)" : "")}.

            | retrieval | R@1 | R@5 | R@10 | mR |
            | --- | --- | --- | --- | --- |
            | text→image | {r.TextToImage.R1:F2} | {r.TextToImage.R5:F2} | {r.TextToImage.R10:F2} | {r.TextToImage.Mean:F2} |
            {(r.VectorTextToImage is { } v ? $"| text→image, vector only | {v.R1:F2} | {v.R5:F2} | {v.R10:F2} | {v.Mean:F2} |" : "")}
            | image→text | {r.ImageToText.R1:F2} | {r.ImageToText.R5:F2} | {r.ImageToText.R10:F2} | {r.ImageToText.Mean:F2} |

            {(r.Captions.NotAvailable.Count > 0 ? "Not available: " + string.Join("; ", r.Captions.NotAvailable) : "")}
            {Published(r.Dataset)}
            """;
    }
}
