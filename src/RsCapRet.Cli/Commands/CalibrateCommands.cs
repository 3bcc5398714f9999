using System.CommandLine;
using RsCapRet.Inference;
using RsCapRet.Queries;
using RsCapRet.Raster;
using RsCapRet.Training.Datasets;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret calibrate --model DIR --dataset DIR [--dataset DIR ...] [--split val]`: fits the relevance calibration
/// (issue 29) on validation data and writes relevance.json into the model folder (<see cref="RelevanceCalibrator"/>).
/// </summary>
public static class CalibrateCommands
{
    public static Command Build()
    {
        var (model, device) = (CommonOptions.Model(), CommonOptions.Device());
        var dataset = new Option<string[]>("--dataset") { Description = "Karpathy-style dataset folder(s) (dataset.json + images/); repeat for several", Required = true, AllowMultipleArgumentsPerToken = false };
        var split = new Option<string>("--split") { Description = "The split to fit on: validation data, never test", DefaultValueFactory = _ => "val" };
        var outFile = new Option<string?>("--out", "-o") { Description = "Write the calibration here instead of <model>/relevance.json" };
        var report = new Option<string?>("--report") { Description = "Also write the report (Markdown) to this file" };
        var seed = new Option<int>("--seed") { Description = "Seed of the halves and the background sample", DefaultValueFactory = _ => 29 };
        var background = new Option<int>("--background") { Description = "Background images stored with the calibration", DefaultValueFactory = _ => RelevanceCalibrator.DefaultBackground }.InRange(2, 2048);
        var cmd = new Command("calibrate", "Fit search relevance (a calibrated probability of a match) on validation data; writes relevance.json into the model folder")
            { model, device, dataset, split, outFile, report, seed, background };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var splitName = parse.GetValue(split)!;
            if (splitName == "test") throw new ArgumentException("relevance is fitted on validation data; the test split stays held out");
            var log = parse.InvocationConfiguration.Error;
            var modelDir = CommonOptions.ModelFolder(parse.GetValue(model));
            using var encoder = RsCapRetTileEncoder.Load(modelDir, parse.GetValue(device)!);
            var images = new List<CalibrationImage>();
            var names = new List<string>();
            foreach (var dir in parse.GetValue(dataset)!)
            {
                var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(dir)));
                names.Add(name);
                var list = KarpathyDataset.Load(dir, name, new HashSet<string> { splitName });
                if (list.Count == 0) throw new ArgumentException($"{dir}: no images in split '{splitName}'");
                var texts = list.SelectMany(i => i.Captions).Distinct().ToList();
                var vectorOf = new Dictionary<string, float[]>(texts.Count);
                for (var s = 0; s < texts.Count; s += 128)
                {
                    ct.ThrowIfCancellationRequested();
                    var chunk = texts.Skip(s).Take(128).ToList();
                    var vectors = encoder.EmbedTexts(chunk);
                    for (var i = 0; i < chunk.Count; i++) vectorOf[chunk[i]] = vectors[i];
                }
                await log.WriteLineAsync($"{name}: {texts.Count} distinct captions embedded");
                for (var s = 0; s < list.Count; s += 32)
                {
                    ct.ThrowIfCancellationRequested();
                    var batch = list.Skip(s).Take(32).ToList();
                    var encoded = encoder.Encode(batch.Select(b => RasterImage.ReadRgb(b.ImagePath)).ToList(), caption: false, ct);
                    for (var i = 0; i < batch.Count; i++)
                        images.Add(new CalibrationImage(name, batch[i].ImageId, RelevanceCalibrator.ClassOf(name, batch[i].ImagePath), encoded[i].Embedding,
                            batch[i].Captions.Select(c => vectorOf[c]).ToList()));
                }
                await log.WriteLineAsync($"{name}: {list.Count} images embedded");
            }
            var result = RelevanceCalibrator.Run(images, encoder.EmbedTexts, encoder.Identity, names, splitName, parse.GetValue(seed),
                parse.GetValue(background), msg => log.WriteLine(msg));
            var target = parse.GetValue(outFile) ?? Path.Combine(modelDir, RelevanceCalibration.FileName);
            await File.WriteAllTextAsync(target, result.Json + "\n", ct);
            if (parse.GetValue(report) is { } r) await File.WriteAllTextAsync(r, result.Markdown, ct);
            await output.WriteLineAsync(result.Markdown);
            await output.WriteLineAsync($"wrote {target}");
            return 0;
        });
        return cmd;
    }
}
