using System.CommandLine;
using RsCapRet.Training;

namespace RsCapRet.Cli.Commands;

/// <summary>
/// `rscapret train --config FILE --out DIR`: an RS-CapRet training run; `rscapret train-clip --config FILE --out DIR`:
/// contrastive CLIP fine-tuning. Both resume from DIR/checkpoint.
/// </summary>
public static class TrainCommands
{
    public static IEnumerable<Command> Build() => [BuildTrain(), BuildTrainClip()];

    private static Action<string> Log(TextWriter output) => line =>
    {
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss} {line}");
        output.Flush();
    };

    private static Command BuildTrainClip()
    {
        var config = new Option<string>("--config") { Description = "CLIP training config (JSON; see models/configs/clip-*.json)", Required = true };
        var outDir = new Option<string>("--out", "-o") { Description = "Run folder: checkpoints, history.csv, training.svg, best/ (CLIPModel) and best/vision/ (for RS-CapRet)", Required = true };
        var cmd = new Command("train-clip", "Contrastive fine-tuning of a CLIP dual encoder on captioned imagery (resumable)") { config, outDir };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var trainer = new ClipTrainer(ClipTrainConfig.Load(parse.GetValue(config)!), parse.GetValue(outDir)!, Log(output));
            var history = await Task.Run(() => trainer.Run(ct), ct);
            var before = history.FirstOrDefault(h => h.Epoch == 0);
            var best = history.Where(h => h.Epoch > 0).MaxBy(h => h.ValTextToImage.Mean);
            if (before is not null) await output.WriteLineAsync($"before training: val text->image {before.ValTextToImage}");
            await output.WriteLineAsync(best is null ? "no epoch completed" : $"best epoch {best.Epoch}: val text->image {best.ValTextToImage}, image->text {best.ValImageToText}");
            return 0;
        });
        return cmd;
    }

    private static Command BuildTrain()
    {
        var config = new Option<string>("--config") { Description = "Training config (JSON; see models/configs/)", Required = true };
        var outDir = new Option<string>("--out", "-o") { Description = "Run folder: checkpoints, history.csv, training.svg, best/ (the exported model)", Required = true };
        var cmd = new Command("train", "Train an RS-CapRet model (resumable: re-run the same command after a crash)") { config, outDir };
        CommandAction.Set(cmd, async (parse, output, ct) =>
        {
            var cfg = TrainConfig.Load(parse.GetValue(config)!);
            var trainer = new RsCapRetTrainer(cfg, parse.GetValue(outDir)!, Log(output));
            var history = await Task.Run(() => trainer.Run(ct), ct);
            var best = history.MaxBy(h => h.ValTextToImage.Mean);
            await output.WriteLineAsync(best is null ? "no epoch completed" : $"best epoch {best.Epoch}: val text->image {best.ValTextToImage}");
            return 0;
        });
        return cmd;
    }
}
