using System.Globalization;
using System.Text;
using RsCapRet.Core;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Model.Tokenizers;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;
using static TorchSharp.torch;

namespace RsCapRet.Training;

/// <summary>One phrasing set's figures (seen in training, or held out).</summary>
public sealed record DialogueFigures(string Phrasings, IReadOnlyDictionary<DialogueIntent, double> IntentAccuracy, double DescribeCider,
    double FollowUpCider, RecallAtK DialogueTextToImage, RecallAtK DirectTextToImage, double ClassPrecisionAt10, double DirectClassPrecisionAt10,
    double SimilarPrecisionAt10, double YesNoAccuracy, double WhichAccuracy, int Dialogues, double GroundedYesNoAccuracy = double.NaN,
    double GroundedWhichAccuracy = double.NaN, IReadOnlyList<CaptionRequestFigures>? CaptionRequests = null)
{
    public double MeanIntentAccuracy => IntentAccuracy.Values.Average();
}

/// <summary>
/// Requests for one of an image's captions in one phrasing: how many were answered with [RET] (a request answered
/// otherwise counts as the last rank in the mid-dialogue mR), and over those that were, the mid-dialogue and direct mR.
/// </summary>
public sealed record CaptionRequestFigures(string Phrasing, int Asked, int Retrieved, RecallAtK DialogueWhereRetrieved, RecallAtK DirectWhereRetrieved);

/// <summary>The scripted-dialogue evaluation of a model on a dataset split, and one transcript per intent as examples.</summary>
public sealed record DialogueReport(string Model, string Dataset, string Split, int Images, IReadOnlyList<DialogueFigures> Figures,
    IReadOnlyList<string> Examples, double Seconds)
{
    public string Markdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Dialogue evaluation of {Model} on {Dataset} {Split} ({Images} images; greedy answers; {Seconds:F0} s)");
        sb.AppendLine();
        sb.AppendLine("| phrasings | dialogues | intent acc. (describe / retrieve / similar / yes-no / which) | describe CIDEr | follow-up describe CIDEr | mid-dialogue t→i mR | direct t→i mR | class P@10 dialogue / direct | similar P@10 | yes/no acc. decoder / grounded | which acc. decoder / grounded |");
        sb.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        foreach (var f in Figures)
        {
            var acc = string.Join(" / ", Enum.GetValues<DialogueIntent>().Select(i => f.IntentAccuracy.TryGetValue(i, out var a) ? Pct(a) : "-"));
            sb.AppendLine(CultureInfo.InvariantCulture,
                $"| {f.Phrasings} | {f.Dialogues} | {acc} (mean {Pct(f.MeanIntentAccuracy)}) | {f.DescribeCider:F3} | {f.FollowUpCider:F3} | {f.DialogueTextToImage.Mean:F2} | {f.DirectTextToImage.Mean:F2} | {Pct(f.ClassPrecisionAt10)} / {Pct(f.DirectClassPrecisionAt10)} | {Pct(f.SimilarPrecisionAt10)} | {Pct(f.YesNoAccuracy)} / {Pct(f.GroundedYesNoAccuracy)} | {Pct(f.WhichAccuracy)} / {Pct(f.GroundedWhichAccuracy)} |");
        }
        sb.AppendLine();
        sb.AppendLine("Caption requests by phrasing (a request not answered with [RET] counts as the last rank above; here, the mR over those that were):");
        sb.AppendLine();
        sb.AppendLine("| phrasings | phrasing | asked | answered with [RET] | mid-dialogue t→i mR / direct, where it retrieved |");
        sb.AppendLine("| --- | --- | --- | --- | --- |");
        foreach (var f in Figures)
            foreach (var c in f.CaptionRequests ?? [])
                sb.AppendLine(CultureInfo.InvariantCulture,
                    $"| {f.Phrasings} | {c.Phrasing} | {c.Asked} | {Pct((double)c.Retrieved / c.Asked)} | {(c.Retrieved == 0 ? "-" : $"{c.DialogueWhereRetrieved.Mean:F2} / {c.DirectWhereRetrieved.Mean:F2}")} |");
        sb.AppendLine();
        sb.AppendLine("Grounded: the decoder's yes/no or \"the Nth one\" with its verdict from the shared space (the [RET] vector of the question against the images shown; yes when the search's calibrated relevance reaches the calibration's yes level), as the chat answers; a wrong kind of answer counts as wrong; \"-\" where the model folder has no relevance.json.");
        sb.AppendLine();
        sb.AppendLine("Examples (first image of each intent, held-out phrasings):");
        sb.AppendLine();
        foreach (var e in Examples) sb.AppendLine("    " + e.Replace("\n", "\n    ", StringComparison.Ordinal));
        return sb.ToString();
    }

    private static string Pct(double v) => double.IsNaN(v) ? "-" : (100 * v).ToString("F1", CultureInfo.InvariantCulture) + " %";
}

/// <summary>
/// <c>rscapret evaluate --dialogue</c> (issue 34): for every image of a split, scripted dialogues of each intent
/// (<see cref="DialogueGenerator"/> over the split, fixed seed), once with phrasings seen in training, once with
/// held-out ones and once with the held-out ones written later (<see cref="DialoguePhrasing.LaterHeldOut"/>). The
/// model answers greedily after BOS, as the chat does; the answer's kind (a [RET], yes/no, "the Nth one", or a
/// description) gives intent accuracy; descriptions are scored with CIDEr against the image's
/// references; a mid-dialogue [RET] for one of the image's captions ranks the split's images (text→image recall,
/// beside the direct search of the same caption); class requests and "more like this" are scored by the share of
/// their top 10 of the image's class. Yes/no and "which" are scored twice: the decoder's own verdict, and the verdict
/// the chat gives, from the shared space (<c>ground</c>: the CLI passes the chat's own <c>ChatGrounding.Of</c>).
/// </summary>
public static partial class DialogueEvaluation
{
    private static readonly DialogueIntent[] Intents = Enum.GetValues<DialogueIntent>();

    /// <summary>The report's rows: phrasings seen in training, held out, and held out since dialogue-v22 (a second probe).</summary>
    private static readonly (bool HeldOut, bool Later, string Name)[] PhrasingRows =
        [(false, false, "seen in training"), (true, false, "held out"), (true, true, "held out, written with v22")];

    public static DialogueReport Run(RsCapRetModel model, LlamaTextTokenizer tokenizer, ImagePreprocessor pre, string modelName,
        string datasetDirectory, string split, int? maxImages = null, int seed = 34, Action<string>? log = null,
        Func<string, string, IReadOnlyList<float[]>, Func<float[]>, string?>? ground = null, bool retrievalAnswerNamesThing = false,
        RsCapRetModel? searchModel = null)
    {
        // The chat answers; image vectors and direct queries are the search's (a folder's model beside its chat adapter).
        var search = searchModel ?? model;
        search.eval();
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(datasetDirectory));
        var images = KarpathyDataset.Load(datasetDirectory, name, new HashSet<string> { split });
        if (images.Count < 2) throw new ArgumentException($"{datasetDirectory}: split '{split}' has {images.Count} images; the dialogues need at least two");
        model.eval();
        using var _ = no_grad();
        var pooled = new List<Tensor>();
        for (var s = 0; s < images.Count; s += 32)
        {
            var batch = images.Skip(s).Take(32).ToList();
            using var scope = NewDisposeScope();
            pooled.Add(search.PooledImage(pre.Process(batch.Select(b => RasterImage.ReadRgb(b.ImagePath)).ToList())).cpu().MoveToOuterDisposeScope());
            log?.Invoke($"images {Math.Min(s + 32, images.Count)}/{images.Count}");
        }
        using var allPooled = cat(pooled, 0);
        foreach (var p in pooled) p.Dispose();
        using var imageVectors = search.ImageEmbeddingFromPooled(allPooled).cpu();
        var vectors = Enumerable.Range(0, images.Count).Select(i => imageVectors[i].data<float>().ToArray()).ToArray();
        var classes = images.Select(i => SceneClassNames.ClassOf(i.Dataset, i.ImagePath)).ToArray();
        // Each image its own group: "more like this" and caption requests target that image.
        var pool = images.Select((im, i) => new DialogueImage(classes[i], im.Captions, i)).ToList();
        var generator = new DialogueGenerator(tokenizer, pool, model.Llm.Config.MaxPositionEmbeddings, model.Heads.PrefixTokens, readsTurns: model.ReadsTurns,
            retrievalAnswerNamesThing: retrievalAnswerNamesThing);
        var evaluated = Enumerable.Range(0, maxImages is { } m ? Math.Min(m, images.Count) : images.Count).ToList();

        var figures = new List<DialogueFigures>();
        var examples = new List<string>();
        foreach (var (heldOut, later, rowName) in PhrasingRows)
        {
            var correct = Intents.ToDictionary(i => i, _ => 0);
            var asked = Intents.ToDictionary(i => i, _ => 0);
            var describe = new Dictionary<string, string>();
            var followUp = new Dictionary<string, string>();
            var dialogueRanks = new List<int>();
            var byPhrasing = new SortedDictionary<string, (int Asked, List<int> Dialogue, List<int> Direct)>(StringComparer.Ordinal);
            var directRanks = new List<int>();
            double classHits = 0, directClassHits = 0, similarHits = 0;
            int classAsked = 0, similarAsked = 0, yesNoRight = 0, yesNoAsked = 0, whichRight = 0, whichAsked = 0, groundedYesNoRight = 0, groundedWhichRight = 0;
            var yesNoUngrounded = false;
            var dialogues = 0;
            foreach (var i in evaluated)
            {
                // The first two rows draw as they did before the later held-out row existed, so older reports stay comparable.
                var rng = new Random(seed * 100_003 + i * 2 + (heldOut ? 1 : 0) + (later ? 50_000_000 : 0));
                var plans = new List<(DialogueIntent Intent, bool Ordinal, bool? ByClass)>
                {
                    (DialogueIntent.Describe, false, null), (DialogueIntent.Describe, true, null), (DialogueIntent.Retrieve, false, false),
                    (DialogueIntent.Similar, false, null), (DialogueIntent.YesNo, false, null), (DialogueIntent.YesNo, true, null),
                };
                if (classes[i] is not null) { plans.Add((DialogueIntent.Retrieve, false, true)); plans.Add((DialogueIntent.Which, false, null)); }
                foreach (var (intent, ordinal, byClass) in plans)
                {
                    var phrasings = DialogueGenerator.PhrasingsOf(intent, heldOut, ordinal, later: later);
                    if (phrasings.Count == 0) continue;
                    var sample = generator.Generate(i, intent, phrasings[rng.Next(phrasings.Count)], rng, byClass);
                    var (text, vector) = Answer(model, tokenizer, sample, allPooled);
                    dialogues++;
                    var kind = vector is not null ? DialogueIntent.Retrieve
                        : text is ChatFormat.Yes or ChatFormat.No ? DialogueIntent.YesNo
                        : ChatFormat.WhichPosition(text) is not null ? DialogueIntent.Which : DialogueIntent.Describe;
                    var expected = sample.Intent == DialogueIntent.Similar ? DialogueIntent.Retrieve : sample.Intent;
                    // Intent accuracy is per asked intent; Similar is right when it retrieves.
                    asked[sample.Intent]++;
                    if (kind == expected) correct[sample.Intent]++;
                    if (heldOut && !later && examples.Count < Intents.Length + 2 && i == evaluated[0])
                        examples.Add(Transcript(tokenizer, sample, images, text, vector is not null));
                    var id = images[i].ImageId;
                    switch (sample.Intent)
                    {
                        case DialogueIntent.Describe:
                            (ordinal ? followUp : describe)[id] = kind == DialogueIntent.Describe && text.Length > 0 ? text : "<no description>";
                            break;
                        case DialogueIntent.Retrieve when sample.AboutCaption:
                            var caption = sample.Thing!;
                            var direct = RankOf(DirectQuery(search, tokenizer, caption), vectors, i);
                            dialogueRanks.Add(vector is null ? images.Count : RankOf(vector, vectors, i));
                            directRanks.Add(direct);
                            if (!byPhrasing.TryGetValue(sample.Phrasing.Template, out var stat)) stat = (0, [], []);
                            if (vector is not null) { stat.Dialogue.Add(dialogueRanks[^1]); stat.Direct.Add(direct); }
                            byPhrasing[sample.Phrasing.Template] = stat with { Asked = stat.Asked + 1 };
                            break;
                        case DialogueIntent.Retrieve:
                            classAsked++;
                            if (vector is not null) classHits += ShareOfClass(vector, vectors, classes, classes[i], exclude: null);
                            directClassHits += ShareOfClass(DirectQuery(search, tokenizer, SceneClassNames.LabelOf(classes[i]!)), vectors, classes, classes[i], exclude: null);
                            break;
                        case DialogueIntent.Similar:
                            if (classes[i] is null) break;
                            similarAsked++;
                            if (vector is not null) similarHits += ShareOfClass(vector, vectors, classes, classes[i], exclude: i);
                            break;
                        case DialogueIntent.YesNo:
                            yesNoAsked++;
                            if (text == sample.Answer) yesNoRight++;
                            if (kind == DialogueIntent.YesNo && ground is not null)
                            {
                                var verdict = Grounded(search, tokenizer, sample, text, vectors, ground);
                                yesNoUngrounded |= verdict is null;   // the chat leaves yes/no ungrounded without a calibration
                                if (verdict == sample.Answer) groundedYesNoRight++;
                            }
                            break;
                        case DialogueIntent.Which:
                            whichAsked++;
                            if (text == sample.Answer) whichRight++;
                            if (kind == DialogueIntent.Which && ground is not null && Grounded(search, tokenizer, sample, text, vectors, ground) == sample.Answer) groundedWhichRight++;
                            break;
                    }
                }
                if (i % 50 == 0) log?.Invoke($"{rowName}: image {i + 1}/{evaluated.Count}");
            }
            var refs = evaluated.ToDictionary(i => images[i].ImageId, i => images[i].Captions);
            double Cider(Dictionary<string, string> cands) => cands.Count == 0 ? double.NaN
                : CaptionScorer.Score(refs.Where(r => cands.ContainsKey(r.Key)).ToDictionary(), cands, new MetricOptions()).Corpus["CIDEr"];
            figures.Add(new DialogueFigures(rowName,
                Intents.Where(x => asked[x] > 0).ToDictionary(x => x, x => (double)correct[x] / asked[x]),
                Cider(describe), Cider(followUp), RetrievalMetrics.FromRanks(dialogueRanks), RetrievalMetrics.FromRanks(directRanks),
                classAsked == 0 ? double.NaN : classHits / classAsked, classAsked == 0 ? double.NaN : directClassHits / classAsked,
                similarAsked == 0 ? double.NaN : similarHits / similarAsked,
                yesNoAsked == 0 ? double.NaN : (double)yesNoRight / yesNoAsked, whichAsked == 0 ? double.NaN : (double)whichRight / whichAsked, dialogues,
                yesNoAsked == 0 || ground is null || yesNoUngrounded ? double.NaN : (double)groundedYesNoRight / yesNoAsked,
                whichAsked == 0 || ground is null ? double.NaN : (double)groundedWhichRight / whichAsked,
                [.. byPhrasing.Select(kv => new CaptionRequestFigures(kv.Key, kv.Value.Asked, kv.Value.Dialogue.Count,
                    RetrievalMetrics.FromRanks(kv.Value.Dialogue), RetrievalMetrics.FromRanks(kv.Value.Direct)))]));
        }
        return new DialogueReport(modelName, name, split, evaluated.Count, figures, examples, sw.Elapsed.TotalSeconds);
    }

    /// <summary>The model's answer to the dialogue's last user turn: its text and, when it emitted [RET], the vector.</summary>
    public static (string Text, float[]? Vector) Answer(RsCapRetModel model, LlamaTextTokenizer tokenizer, DialogueSample sample, Tensor pooled)
    {
        var prompt = new List<PromptSegment>();
        foreach (var turn in sample.Turns.Take(sample.Turns.Count - 1))
        {
            if (turn is DialogueImageTurn image)
            {
                prompt.Add(new PooledImageSegment(pooled[image.Image]));
                if (image.Description is { } d) prompt.Add(new TextSegment(d));
            }
            else if (turn is DialogueTextTurn words)
            {
                if (model.ReadsTurns && words.UserText is { } userText) prompt.Add(new TurnReadingSegment(userText));
                prompt.Add(new TextSegment(words.Ids));
            }
        }
        prompt.Add(new TextSegment([tokenizer.BosId]));
        var reply = model.Continue(prompt, 40);
        var text = tokenizer.Decode(reply.TokenIds).Trim();
        return (string.Join(' ', text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries)), reply.RetrievalVector);
    }

    /// <summary>
    /// The chat's verdict on the decoder's yes/no or "which one" <paramref name="answer"/> (null where the chat leaves it
    /// ungrounded): <paramref name="ground"/> given the user's words, the vectors of the images the dialogue shows, and
    /// the search's vector of those words.
    /// </summary>
    private static string? Grounded(RsCapRetModel model, LlamaTextTokenizer tokenizer, DialogueSample sample, string answer, float[][] vectors,
        Func<string, string, IReadOnlyList<float[]>, Func<float[]>, string?> ground)
    {
        var shown = sample.Turns.OfType<DialogueImageTurn>().Select(t => vectors[t.Image]).ToList();
        var question = tokenizer.Decode(((DialogueTextTurn)sample.Turns[^2]).Ids).Trim()[ChatFormat.UserMarker.Length..].Trim();
        return ground(question, answer, shown, () => DirectQuery(model, tokenizer, question));
    }

    /// <summary>The search's own query vector of <paramref name="text"/> (BOS text [RET]), what a dialogue's [RET] is compared with.</summary>
    private static float[] DirectQuery(RsCapRetModel model, LlamaTextTokenizer tokenizer, string text)
    {
        using var ids = tensor(tokenizer.EncodeForRetrieval(text).Select(t => (long)t).ToArray()).unsqueeze(0);
        using var vector = model.RetEmbedding(ids).cpu();
        return vector[0].data<float>().ToArray();
    }

    /// <summary>0-based rank of image <paramref name="target"/> by cosine with <paramref name="query"/> (normalised vectors).</summary>
    private static int RankOf(float[] query, float[][] images, int target)
    {
        var score = Dot(query, images[target]);
        var rank = 0;
        for (var j = 0; j < images.Length; j++) if (j != target && Dot(query, images[j]) > score) rank++;
        return rank;
    }

    private static double ShareOfClass(float[] query, float[][] images, string?[] classes, string? cls, int? exclude)
    {
        var top = Enumerable.Range(0, images.Length).Where(j => j != exclude).OrderByDescending(j => Dot(query, images[j])).Take(10).ToList();
        return top.Count(j => classes[j] == cls) / (double)top.Count;
    }

    private static float Dot(float[] a, float[] b)
    {
        var s = 0f;
        for (var i = 0; i < a.Length; i++) s += a[i] * b[i];
        return s;
    }

    private static string Transcript(LlamaTextTokenizer tokenizer, DialogueSample sample, IReadOnlyList<CaptionedImage> images, string answer, bool retrieved)
    {
        var lines = new List<string>();
        foreach (var turn in sample.Turns.Take(sample.Turns.Count - 1))
            lines.Add(turn switch
            {
                DialogueImageTurn im => $"[image {Path.GetFileName(images[im.Image].ImagePath)}]" + (im.Description is { } d ? $" model: {tokenizer.Decode(d).Trim()}" : ""),
                DialogueTextTurn { Ids: var ids } t when ids.Length > 1 && !t.Trained && tokenizer.Decode(ids).TrimStart().StartsWith(ChatFormat.UserMarker, StringComparison.Ordinal)
                    => "user: " + tokenizer.Decode(ids).Trim()[ChatFormat.UserMarker.Length..].Trim(),
                DialogueTextTurn t => "model: " + tokenizer.Decode(t.Ids).Trim() + (t.Ids.Contains(tokenizer.RetId) ? " [RET]" : ""),
                _ => "",
            });
        lines.Add($"model: {answer}{(retrieved ? " [RET]" : "")}   (expected: {sample.Answer}{(sample.RetPositives is null ? "" : " [RET]")})");
        return $"{sample.Intent} ({sample.Phrasing.Template}):\n" + string.Join('\n', lines);
    }
}
