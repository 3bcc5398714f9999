using System.Text.Json;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using static TorchSharp.torch;

namespace RsCapRet.Training;

public sealed record EvaluationReport(string Model, string Dataset, string Split, int Images, int Texts,
    CaptionScores Captions, RecallAtK TextToImage, RecallAtK ImageToText, double Seconds);

/// <summary>
/// Benchmark evaluation of an RS-CapRet model on a Karpathy split: captions (greedy or beam) scored with the
/// coco-caption metrics against all references, and retrieval Recall@1/5/10 in both directions over every caption.
/// </summary>
public static class ModelEvaluator
{
    public static EvaluationReport Evaluate(RsCapRetModel model, LlamaTextTokenizer tokenizer, ImagePreprocessor pre,
        string modelName, string datasetDirectory, string split, GenerationOptions generation, MetricOptions metrics,
        Action<string>? log = null, string? outDir = null)
    {
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
            var ids = model.GenerateCaptions(pixels, generation);
            for (var i = 0; i < batch.Count; i++) candidates[batch[i].ImageId] = tokenizer.Decode(ids[i]).Trim();
            var vecs = model.ImageEmbedding(pixels).cpu();
            for (var i = 0; i < batch.Count; i++) imageVecs.Add(vecs[i].data<float>().ToArray());
            log?.Invoke($"captioned {Math.Min(s + 32, images.Count)}/{images.Count}");
        }
        // A caption the model left empty still gets scored (as zero), rather than failing the whole run.
        var scored = candidates.ToDictionary(kv => kv.Key, kv => kv.Value.Length == 0 ? "<empty>" : kv.Value);
        var captionScores = CaptionScorer.Score(images.ToDictionary(i => i.ImageId, i => i.Captions), scored, metrics);

        var texts = images.SelectMany((im, idx) => im.Captions.Select(c => (Image: idx, Text: c))).ToList();
        var textVecs = new List<float[]>();
        for (var s = 0; s < texts.Count; s += 128)
        {
            using var scope = NewDisposeScope();
            var chunk = texts.Skip(s).Take(128).Select(t => tokenizer.EncodeForRetrieval(t.Text)).ToList();
            var (ids, mask) = TokenBatch.PadRight(chunk);
            var vecs = model.RetEmbedding(ids, mask).cpu();
            for (var b = 0; b < chunk.Count; b++) textVecs.Add(vecs[b].data<float>().ToArray());
        }
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
        var report = new EvaluationReport(modelName, name, split, images.Count, texts.Count, captionScores,
            RetrievalMetrics.TextToImage(sim, labels), RetrievalMetrics.ImageToText(sim, labels), sw.Elapsed.TotalSeconds);
        if (outDir != null)
        {
            Directory.CreateDirectory(outDir);
            File.WriteAllText(Path.Combine(outDir, "captions.json"), JsonSerializer.Serialize(candidates, new JsonSerializerOptions { WriteIndented = true }));
            File.WriteAllText(Path.Combine(outDir, "scores.json"), captionScores.ToJson());
            File.WriteAllText(Path.Combine(outDir, "report.md"), Markdown(report));
        }
        return report;
    }

    /// <summary>
    /// Published figures for comparison (labelled as such; test splits of the original papers). Only figures this
    /// project has verified are listed; add rows as they are checked against the papers.
    /// </summary>
    private static string Published(string dataset) => dataset.Contains("ucm", StringComparison.OrdinalIgnoreCase)
        ? """

          Published figures (UCM-Captions test split, from the papers, not measured here):

          | model | CIDEr | text→image mR |
          | --- | --- | --- |
          | RS-CapRet (Llama-2-7B + CLIP ViT-L/14) | 3.429 | 53.84 |
          | MLCA-Net | 3.240 | – |
          """
        : "";

    public static string Markdown(EvaluationReport r)
    {
        var c = r.Captions.Corpus;
        string M(string k) => c.TryGetValue(k, out var v) ? v.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) : "n/a";
        return $"""
            # Evaluation: {r.Model} on {r.Dataset} ({r.Split})

            {r.Images} images, {r.Texts} captions, {r.Seconds:F0} s.

            | BLEU-1 | BLEU-2 | BLEU-3 | BLEU-4 | METEOR | ROUGE_L | CIDEr | SPICE |
            | --- | --- | --- | --- | --- | --- | --- | --- |
            | {M("Bleu_1")} | {M("Bleu_2")} | {M("Bleu_3")} | {M("Bleu_4")} | {M("METEOR")} | {M("ROUGE_L")} | {M("CIDEr")} | {M("SPICE")} |

            | retrieval | R@1 | R@5 | R@10 | mR |
            | --- | --- | --- | --- | --- |
            | text→image | {r.TextToImage.R1:F2} | {r.TextToImage.R5:F2} | {r.TextToImage.R10:F2} | {r.TextToImage.Mean:F2} |
            | image→text | {r.ImageToText.R1:F2} | {r.ImageToText.R5:F2} | {r.ImageToText.R10:F2} | {r.ImageToText.Mean:F2} |

            {(r.Captions.NotAvailable.Count > 0 ? "Not available: " + string.Join("; ", r.Captions.NotAvailable) : "")}
            {Published(r.Dataset)}
            """;
    }
}
