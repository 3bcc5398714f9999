using System.CommandLine;
using RsCapRet.Core;
using RsCapRet.Evaluation;
using RsCapRet.Model;
using RsCapRet.Queries;
using RsCapRet.Training;

namespace RsCapRet.Cli.Commands;

/// <summary>`rscapret score-captions` and `rscapret evaluate`.</summary>
public static class EvaluationCommands
{
    public static IEnumerable<Command> Build()
    {
        var refs = new Option<string>("--refs") { Description = "JSON object: image id -> list of reference captions", Required = true };
        var cands = new Option<string>("--cands") { Description = "JSON object: image id -> candidate caption", Required = true };
        var score = new Command("score-captions", "BLEU-1..4, ROUGE_L, CIDEr (coco-caption compatible; METEOR/SPICE with RSCAPRET_METEOR_JAR/RSCAPRET_SPICE_JAR)") { refs, cands };
        CommandAction.Set(score, async (parse, output, ct) =>
        {
            await output.WriteLineAsync(CaptionScorer.ScoreFiles(parse.GetValue(refs)!, parse.GetValue(cands)!, MetricOptions.FromEnvironment()).ToJson());
            return 0;
        });

        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var dataset = new Option<string>("--dataset") { Description = "Karpathy-style dataset folder (dataset.json + images/)", Required = true };
        var split = new Option<string>("--split") { Description = "Split to evaluate", DefaultValueFactory = _ => "test" };
        var outDir = new Option<string?>("--out", "-o") { Description = "Write captions.json, scores.json and report.md here" };
        var beam = new Option<int?>("--beam") { Description = "Beam width (1 = greedy; default: the model's beam_width)" }.InRange(1, 16);
        var clip = new Option<string[]>("--clip") { Description = "CLIP dual-encoder folder(s) (Hugging Face CLIPModel + vocab.json/merges.txt) whose retrieval is reported beside the model's", AllowMultipleArgumentsPerToken = false };
        var cells = new Option<bool>("--cells") { Description = "Instead: the quadrant test of cell vectors (mosaics of four images of different classes per tile; does the quadrant scoring highest for a class hold it)" };
        var mosaics = new Option<int>("--mosaics") { Description = "Mosaics the --cells test builds", DefaultValueFactory = _ => 200 }.InRange(1, 100_000);
        var retrievalMode = new Option<string>("--retrieval")
        {
            Description = "Text→image ranking measured: vector ([RET] cosine) or hybrid (fused with a caption text match, as search --mode hybrid; needs the catalogue database)",
            DefaultValueFactory = _ => HybridRanking.DefaultMode.ToString().ToLowerInvariant(),
        };
        retrievalMode.AcceptOnlyFromAmong("vector", "hybrid");
        var captionWeight = new Option<double>("--caption-weight") { Description = "Hybrid: the caption side's weight in the fusion (0-100)", DefaultValueFactory = _ => HybridRanking.DefaultCaptionWeight }
            .Must(v => v is >= 0 and <= 100, "must be between 0 and 100");
        var tta = new Option<int>("--tta") { Description = "Test-time augmentation: each image vector the mean of this many dihedral views (1 = none, 4 = the quarter turns, 8 = with mirrors)", DefaultValueFactory = _ => 1 }.InRange(1, 8);
        var dialogue = new Option<bool>("--dialogue") { Description = "Instead: scripted dialogues over the split's images, phrasings seen in training and held out (intent accuracy, CIDEr of descriptions, mid-dialogue [RET] recall beside direct search, yes/no and \"which one\" accuracy)" };
        var chatAdapter = CommonOptions.ChatAdapter();
        var maxImages = new Option<int?>("--max-images") { Description = "--dialogue: only the first N images of the split start dialogues (all of them are still ranked)" }.InRange(2, 1_000_000);
        var evaluate = new Command("evaluate", "Caption and retrieval benchmark of a model on a dataset split (a CLIP folder as --model: retrieval only)")
            { model, device, dataset, split, outDir, beam, clip, cells, mosaics, retrievalMode, captionWeight, tta, dialogue, maxImages, chatAdapter, DbCommands.DbOption };
        CommandAction.Set(evaluate, async (parse, output, ct) =>
        {
            var (datasetDir, splitName, outPath) = (parse.GetValue(dataset)!, parse.GetValue(split)!, parse.GetValue(outDir));
            var dev = TorchDevice.Resolve(parse.GetValue(device)!);
            var modelDir = parse.GetValue(model);
            if (parse.GetValue(chatAdapter) is not null && !parse.GetValue(dialogue))
                throw new ArgumentException("--chat-adapter: only the dialogue evaluation (--dialogue) talks with a chat adapter; captions and retrieval are the model's");
            if (parse.GetValue(cells))
            {
                using var cellEncoder = CommonOptions.LoadEncoder(modelDir, parse.GetValue(device)!, false);
                var cellReport = RsCapRet.Queries.CellLocalizationEvaluation.Run(cellEncoder, datasetDir, splitName, parse.GetValue(mosaics),
                    log: msg => parse.InvocationConfiguration.Error.WriteLine(msg));
                if (outPath is not null)
                {
                    Directory.CreateDirectory(outPath);
                    await File.WriteAllTextAsync(Path.Combine(outPath, "cells.md"), cellReport.Markdown() + "\n", ct);
                }
                await output.WriteLineAsync(cellReport.Markdown());
                return 0;
            }
            if (parse.GetValue(dialogue))
            {
                using var chatEncoder = CommonOptions.LoadEncoder(modelDir, parse.GetValue(device)!, false, CommonOptions.ResolveChatAdapter(parse.GetValue(chatAdapter)));
                // Scored as the chat answers (ChatGrounding); its yes/no verdicts need the search's relevance calibration.
                var (calibration, calibrationNote) = RelevanceCalibration.LoadOrExplain(chatEncoder.Directory);
                if (calibration is null) parse.InvocationConfiguration.Error.WriteLine($"grounded yes/no not scored: {calibrationNote}");
                if (chatEncoder.ChatAdapterSkipped is { } skipped) parse.InvocationConfiguration.Error.WriteLine($"note: {skipped}; the model's own decoder is evaluated");
                var chatName = chatEncoder.ChatAdapterVersion is { } adapter ? $" with chat adapter v{adapter}" : "";
                var dialogueReport = DialogueEvaluation.Run(chatEncoder.ChatModel, chatEncoder.Tokenizer, chatEncoder.Preprocessor,
                    $"{chatEncoder.Identity.Name} v{chatEncoder.Identity.Version}{chatName}", datasetDir, splitName, parse.GetValue(maxImages),
                    log: msg => parse.InvocationConfiguration.Error.WriteLine(msg),
                    ground: (question, answer, shown, query) => ChatGrounding.Of(question, answer, shown, query, calibration)?.Answer,
                    retrievalAnswerNamesThing: chatEncoder.RetrievalAnswerNamesThing, searchModel: chatEncoder.Model);
                if (outPath is not null)
                {
                    Directory.CreateDirectory(outPath);
                    await File.WriteAllTextAsync(Path.Combine(outPath, "dialogue.md"), dialogueReport.Markdown(), ct);
                }
                await output.WriteLineAsync(dialogueReport.Markdown());
                return 0;
            }
            var clipDirs = (parse.GetValue(clip) ?? []).ToList();
            EvaluationReport? report = null;
            if (modelDir is not null && ClipEvaluator.IsClipFolder(modelDir)) clipDirs.Insert(0, modelDir);
            else
            {
                var mode = HybridRanking.ParseMode(parse.GetValue(retrievalMode)!);
                var owned = new List<IAsyncDisposable>();
                try
                {
                    // Hybrid's text side is PostgreSQL full-text search: the product's own SQL scores the captions.
                    var store = mode == RetrievalMode.Hybrid ? await CatalogConnection.OpenAsync(parse, owned, ct) : null;
                    var retrieval = new RetrievalOptions(mode, parse.GetValue(captionWeight),
                        store is null ? null : (texts, captions) => store.CaptionScoresAsync(texts, captions, ct).GetAwaiter().GetResult());
                    using var encoder = CommonOptions.LoadEncoder(modelDir, parse.GetValue(device)!, false);
                    report = ModelEvaluator.Evaluate(encoder.Model, encoder.Tokenizer, encoder.Preprocessor, encoder.Identity.Name,
                        datasetDir, splitName, encoder.Generation with { BeamWidth = parse.GetValue(beam) ?? encoder.Generation.BeamWidth, MaxNewTokens = 40 },
                        MetricOptions.FromEnvironment(), msg => parse.InvocationConfiguration.Error.WriteLine(msg), null, null, retrieval, parse.GetValue(tta));
                }
                finally { foreach (var d in owned) await d.DisposeAsync(); }
            }
            var clipReports = clipDirs.Select(d => ClipEvaluator.Evaluate(d, datasetDir, splitName, dev)).ToList();
            var markdown = ModelEvaluator.Markdown(report, clipReports, splitName);
            if (outPath is not null) ModelEvaluator.WriteFiles(outPath, report, clipReports, markdown);
            await output.WriteLineAsync(markdown);
            return 0;
        });
        return [score, evaluate];
    }
}
